// Lustre layouts (backends/lustre/layout.h): a pb::Layout decoded from untrusted bytes (as the
// MDS does from its checkpoint and WAL), validated, resolved, and mapped onto stripe objects.
// Header: u8 target count (1..64), u8 first-target hint, u64 offset, u32 length; the rest is
// the serialized layout.
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "backends/lustre/layout.h"
#include "fuzz/fuzz_util.h"

using namespace stor::lustre;

// Protobuf logs every malformed string field it parses; the status returned is what matters.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t targets = in.ConsumeIntegralInRange<uint32_t>(1, 64);
  const uint32_t hint = in.ConsumeIntegral<uint8_t>();
  const uint64_t offset = in.ConsumeIntegral<uint64_t>();
  const uint64_t length = in.ConsumeIntegral<uint32_t>() % (64ull << 20);
  const std::string text = in.ConsumeRandomLengthString(64);
  const std::string bytes = in.ConsumeRemainingBytesAsString();

  (void)parse_size(text, true);
  (void)parse_size(text, false);

  pb::Layout tmpl;
  if (!tmpl.ParseFromString(bytes)) return 0;
  (void)describe_layout(tmpl);
  if (!validate_layout(tmpl, targets).is_ok()) return 0;

  pb::Layout lay = resolve_layout(tmpl, targets, hint);
  STOR_FUZZ_CHECK(validate_layout(lay, targets).is_ok(), "a resolved layout no longer validates");
  (void)describe_layout(lay);
  if (offset > UINT64_MAX - length) return 0;  // callers reject ranges past the end of the address space

  // The pieces tile the range in file order, each inside one object of the layout.
  auto pieces = map_range(lay, offset, length);
  uint64_t at = offset;
  for (const auto& p : pieces) {
    STOR_FUZZ_CHECK(p.file_offset == at, "pieces leave a gap or overlap");
    STOR_FUZZ_CHECK(p.length > 0, "empty piece");
    STOR_FUZZ_CHECK(p.component < static_cast<uint32_t>(lay.components_size()), "piece names a missing component");
    const auto& comp = lay.components(static_cast<int>(p.component));
    STOR_FUZZ_CHECK(p.stripe < static_cast<uint32_t>(comp.targets_size()), "piece names a missing stripe");
    STOR_FUZZ_CHECK(p.target == comp.targets(static_cast<int>(p.stripe)), "piece names the wrong target");
    STOR_FUZZ_CHECK(p.target < targets, "piece names a target past the file system's");
    at += p.length;
  }
  STOR_FUZZ_CHECK(at == offset + length, "pieces do not cover the range");
  auto merged = coalesce(pieces);
  uint64_t total = 0;
  for (const auto& p : merged) total += p.length;
  STOR_FUZZ_CHECK(total == length, "coalesce changed the byte count");

  // Object sizes for a dense file ending at the range's end.
  const uint64_t file_size = offset + length;
  for (int c = 0; c < lay.components_size(); ++c)
    for (int s = 0; s < lay.components(c).targets_size(); ++s)
      (void)object_size_for(lay, static_cast<uint32_t>(c), static_cast<uint32_t>(s), file_size);
  return 0;
}
