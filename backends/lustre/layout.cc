#include "backends/lustre/layout.h"

#include <algorithm>

#include "stor/settings.h"

namespace stor::lustre {

namespace {
Status bad(std::string msg) { return Status::InvalidArgument("lustre layout: " + std::move(msg)); }
}  // namespace

Status validate_layout(const pb::Layout& layout, uint32_t target_count, LayoutKind kind) {
  if (layout.components_size() == 0) return bad("layout has no components");
  if (layout.components_size() > kMaxComponents)
    return bad(std::to_string(layout.components_size()) + " components (at most " + std::to_string(kMaxComponents) + ")");
  if (target_count == 0) return bad("file system has no targets");
  uint64_t expected_start = 0;
  for (int i = 0; i < layout.components_size(); ++i) {
    const auto& c = layout.components(i);
    std::string where = "component " + std::to_string(i) + ": ";
    if (c.stripe_size() == 0 || c.stripe_size() % kStripeAlignment != 0)
      return bad(where + "stripe_size " + std::to_string(c.stripe_size()) +
                 " is not a non-zero multiple of 64 KiB (65536)");
    if (c.stripe_size() > kMaxStripeSize) return bad(where + "stripe_size exceeds 4 GiB");
    if (c.stripe_count() == 0 || c.stripe_count() < -1)
      return bad(where + "stripe_count " + std::to_string(c.stripe_count()) + " must be -1 (all targets) or >= 1");
    if (c.stripe_count() > static_cast<int64_t>(target_count))
      return bad(where + "stripe_count " + std::to_string(c.stripe_count()) + " exceeds the " +
                 std::to_string(target_count) + " targets of this file system");
    if (c.stripe_offset() < -1 || c.stripe_offset() >= static_cast<int64_t>(target_count))
      return bad(where + "stripe_offset " + std::to_string(c.stripe_offset()) + " is not -1 or a target index < " +
                 std::to_string(target_count));
    if (c.extent_start() != expected_start)
      return bad(where + "extent starts at " + std::to_string(c.extent_start()) + ", expected " +
                 std::to_string(expected_start) + " (components must tile the file without gaps)");
    if (c.extent_end() <= c.extent_start()) return bad(where + "extent end must be greater than its start");
    if (c.extent_end() != kEof && c.extent_end() % kStripeAlignment != 0)
      return bad(where + "extent end " + std::to_string(c.extent_end()) + " is not a multiple of 64 KiB");
    if (kind == LayoutKind::kResolved && c.targets_size() == 0)
      return bad(where + "a file's layout must list its targets");
    if (c.targets_size() != 0) {
      if (c.stripe_count() < 1 || c.targets_size() != c.stripe_count())
        return bad(where + "resolved target list does not match stripe_count");
      for (int t = 0; t < c.targets_size(); ++t) {
        if (c.targets(t) >= target_count) return bad(where + "target " + std::to_string(c.targets(t)) + " does not exist");
        // Two stripes in one object would overwrite each other.
        for (int u = 0; u < t; ++u)
          if (c.targets(u) == c.targets(t))
            return bad(where + "target " + std::to_string(c.targets(t)) + " is listed twice");
      }
    }
    expected_start = c.extent_end();
  }
  if (expected_start != kEof) return bad("last component must extend to EOF");
  return Status::ok();
}

pb::Layout resolve_layout(const pb::Layout& tmpl, uint32_t target_count, uint32_t first_target_hint) {
  pb::Layout out = tmpl;
  for (int i = 0; i < out.components_size(); ++i) {
    auto* c = out.mutable_components(i);
    if (c->targets_size() != 0) continue;
    uint32_t count = c->stripe_count() < 0 ? target_count : static_cast<uint32_t>(c->stripe_count());
    count = std::min(count, target_count);
    // Successive components start where the previous left off, so a PFL file spreads its first
    // extents over different targets, as Lustre's allocator does.
    uint32_t start = c->stripe_offset() >= 0 ? static_cast<uint32_t>(c->stripe_offset())
                                             : (first_target_hint + static_cast<uint32_t>(i)) % target_count;
    c->set_stripe_count(static_cast<int32_t>(count));
    for (uint32_t s = 0; s < count; ++s) c->add_targets((start + s) % target_count);
  }
  return out;
}

pb::Layout make_layout(int32_t stripe_count, uint64_t stripe_size, int32_t stripe_offset) {
  pb::Layout l;
  auto* c = l.add_components();
  c->set_extent_start(0);
  c->set_extent_end(kEof);
  c->set_stripe_count(stripe_count);
  c->set_stripe_size(stripe_size);
  c->set_stripe_offset(stripe_offset);
  return l;
}

std::vector<StripePiece> map_range(const pb::Layout& layout, uint64_t offset, uint64_t length) {
  std::vector<StripePiece> out;
  if (length == 0) return out;
  uint64_t pos = offset;
  uint64_t end = offset + length < offset ? kEof : offset + length;
  int ci = 0;
  while (pos < end) {
    while (ci < layout.components_size() && layout.components(ci).extent_end() <= pos) ++ci;
    if (ci >= layout.components_size()) break;  // unreachable for validated layouts
    const auto& c = layout.components(ci);
    const uint64_t ss = c.stripe_size();
    const uint64_t count = static_cast<uint64_t>(c.targets_size());
    if (ss == 0 || count == 0 || pos < c.extent_start()) break;  // not a valid resolved layout
    const uint64_t rel = pos - c.extent_start();
    const uint64_t stripe_no = rel / ss;  // global stripe unit number within the component
    const uint64_t in_unit = rel % ss;
    StripePiece p;
    p.component = static_cast<uint32_t>(ci);
    p.stripe = static_cast<uint32_t>(stripe_no % count);
    p.target = c.targets(static_cast<int>(p.stripe));
    p.object_offset = (stripe_no / count) * ss + in_unit;
    p.file_offset = pos;
    p.length = std::min({ss - in_unit, end - pos, c.extent_end() - pos});
    out.push_back(p);
    pos += p.length;
  }
  return out;
}

std::vector<StripePiece> coalesce(std::vector<StripePiece> pieces) {
  std::vector<StripePiece> out;
  out.reserve(pieces.size());
  for (const auto& p : pieces) {
    if (!out.empty()) {
      auto& last = out.back();
      if (last.component == p.component && last.stripe == p.stripe &&
          last.object_offset + last.length == p.object_offset && last.file_offset + last.length == p.file_offset) {
        last.length += p.length;
        continue;
      }
    }
    out.push_back(p);
  }
  return out;
}

Result<uint64_t> object_size_for(const pb::Layout& layout, uint32_t component, uint32_t stripe, uint64_t file_size) {
  if (component >= static_cast<uint32_t>(layout.components_size()))
    return Status::Corruption("lustre layout: no component " + std::to_string(component));
  const auto& c = layout.components(static_cast<int>(component));
  const uint64_t ss = c.stripe_size();
  const uint64_t count = static_cast<uint64_t>(c.targets_size());
  // Validation keeps these out of every loaded layout; this is the last line of defence.
  if (ss == 0 || ss > kMaxStripeSize || count == 0 || count > kMaxTargets || stripe >= count ||
      c.extent_end() <= c.extent_start())
    return Status::Corruption("lustre layout: component " + std::to_string(component) + " (stripe_size " +
                                         std::to_string(ss) + ", " + std::to_string(count) +
                                         " targets) has no object for stripe " + std::to_string(stripe));
  if (file_size <= c.extent_start()) return uint64_t{0};
  const uint64_t len = std::min(file_size, c.extent_end()) - c.extent_start();
  const uint64_t row = ss * count;  // <= 2^32 * 2^12: no overflow
  const uint64_t full_rows = len / row;
  const uint64_t rem = len % row;
  const uint64_t before = static_cast<uint64_t>(stripe) * ss;
  const uint64_t tail = rem > before ? std::min(rem - before, ss) : 0;
  return full_rows * ss + tail;
}

std::string format_size(uint64_t bytes) { return bytes == kEof ? "EOF" : stor::format_size(bytes); }

std::string describe_layout(const pb::Layout& layout) {
  std::string out;
  for (int i = 0; i < layout.components_size(); ++i) {
    const auto& c = layout.components(i);
    if (i) out += "; ";
    out += "[" + format_size(c.extent_start()) + ", " + format_size(c.extent_end()) + ") count=" +
           std::to_string(c.stripe_count()) + " size=" + format_size(c.stripe_size()) +
           " offset=" + std::to_string(c.stripe_offset());
    if (c.targets_size()) {
      out += " targets=";
      for (int t = 0; t < c.targets_size(); ++t) out += (t ? "," : "") + std::to_string(c.targets(t));
    }
  }
  return out;
}

Result<uint64_t> parse_size(const std::string& text, bool allow_eof) {
  if (allow_eof && (text == "EOF" || text == "eof" || text == "-1")) return kEof;
  return stor::parse_size(text);
}

}  // namespace stor::lustre
