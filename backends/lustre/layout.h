// Layout math of the Lustre-style backend: validation of layout templates, resolution of a
// template into a concrete per-file layout, and the mapping of a file byte range onto
// (component, stripe, object offset) pieces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/lustre/lustre.pb.h"
#include "stor/status.h"

namespace stor::lustre {

inline constexpr uint64_t kEof = UINT64_MAX;
inline constexpr uint64_t kStripeAlignment = 64 * 1024;  // Lustre's minimum stripe unit
inline constexpr uint64_t kMaxStripeSize = 4ull << 30;
inline constexpr uint64_t kDefaultStripeSize = 1ull << 20;
inline constexpr uint32_t kMaxTargets = 4096;
inline constexpr int kMaxComponents = 64;
// Largest file size (and write end): object offsets then fit in off_t, and size + stripe math
// (at most kMaxStripeSize * kMaxTargets per row) cannot overflow.
inline constexpr uint64_t kMaxFileSize = static_cast<uint64_t>(INT64_MAX);

enum class LayoutKind {
  kTemplate,  // setstripe / directory default / superblock: targets may be left to the allocator
  kResolved,  // a file's layout: every component names stripe_count distinct existing targets
};

// Checks a layout against a file system with target_count targets: 1..kMaxComponents
// components, stripe sizes are non-zero multiples of 64 KiB up to 4 GiB, counts are -1 or
// 1..targets, offsets are -1 or a valid target, components tile [0, EOF) without gaps, and target
// lists (required for kResolved) match the count and name distinct existing targets. The one
// check for setstripe, mkfs and everything loaded from disk.
Status validate_layout(const pb::Layout& layout, uint32_t target_count, LayoutKind kind = LayoutKind::kTemplate);

// Turns a validated template into a file's concrete layout: stripe_count -1 becomes the target
// count and each component gets its target list, starting at stripe_offset or, when that is -1,
// at `first_target_hint` (the allocator's round-robin position).
pb::Layout resolve_layout(const pb::Layout& tmpl, uint32_t target_count, uint32_t first_target_hint);

// A simple one-component layout.
pb::Layout make_layout(int32_t stripe_count, uint64_t stripe_size, int32_t stripe_offset = -1);

// One contiguous piece of a file range that lives in a single stripe object.
struct StripePiece {
  uint32_t component = 0;
  uint32_t stripe = 0;       // index into the component's targets
  uint32_t target = 0;       // OST index
  uint64_t object_offset = 0;
  uint64_t file_offset = 0;
  uint64_t length = 0;
};

// Splits [offset, offset + length) of a file with a resolved layout into per-object pieces, in
// file order. Pieces never cross a stripe boundary. Stops early (the pieces then cover less than
// the range; callers check) at a component it cannot map, rather than divide by zero.
std::vector<StripePiece> map_range(const pb::Layout& layout, uint64_t offset, uint64_t length);

// Merges neighbouring pieces that continue each other in the same object (a 1-stripe extent, or
// a request inside one stripe column), so each object gets one request per contiguous run.
std::vector<StripePiece> coalesce(std::vector<StripePiece> pieces);

// Size the object of (component, stripe) has when the file is `file_size` bytes long and dense.
// Corruption when the layout cannot name that object (no such component/stripe, zero stripe size).
Result<uint64_t> object_size_for(const pb::Layout& layout, uint32_t component, uint32_t stripe, uint64_t file_size);

// "1 component(s): [0, EOF) count=4 size=1M offset=-1 targets=0,1,2,3" style description.
std::string describe_layout(const pb::Layout& layout);
std::string format_size(uint64_t bytes);  // 1048576 -> "1M"

// stor::parse_size ("65536", "64K", "1M", "2GiB", ...) plus "EOF"/"-1" as kEof where allow_eof.
Result<uint64_t> parse_size(const std::string& text, bool allow_eof = false);

}  // namespace stor::lustre
