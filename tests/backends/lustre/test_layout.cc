// Layout math: validation errors and property tests of map_range / object_size_for against a
// flat in-memory reference file.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "backends/lustre/layout.h"
#include "backends/lustre/lustre_admin.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace {

pb::Layout random_layout(std::mt19937_64& rng, uint32_t targets) {
  LayoutSpec spec;
  int comps = 1 + static_cast<int>(rng() % 3);
  uint64_t end = 0;
  for (int i = 0; i < comps; ++i) {
    StripeSpec s;
    s.stripe_count = rng() % 4 == 0 ? -1 : 1 + static_cast<int32_t>(rng() % targets);
    s.stripe_size = kStripeAlignment * (1 + rng() % 4);
    s.stripe_offset = rng() % 2 ? -1 : static_cast<int32_t>(rng() % targets);
    end += kStripeAlignment * (1 + rng() % 8);
    s.extent_end = i + 1 == comps ? kEof : end;
    spec.push_back(s);
  }
  pb::Layout tmpl = to_layout(spec);
  REQUIRE(validate_layout(tmpl, targets).is_ok());
  pb::Layout l = resolve_layout(tmpl, targets, static_cast<uint32_t>(rng() % targets));
  REQUIRE(validate_layout(l, targets).is_ok());
  return l;
}

using Objects = std::map<std::pair<uint32_t, uint32_t>, std::vector<char>>;

void write_striped(Objects& objs, const pb::Layout& l, uint64_t off, const std::vector<char>& data) {
  for (const auto& p : coalesce(map_range(l, off, data.size()))) {
    auto& o = objs[{p.component, p.stripe}];
    if (o.size() < p.object_offset + p.length) o.resize(p.object_offset + p.length, 0);
    std::copy_n(data.begin() + static_cast<long>(p.file_offset - off), p.length, o.begin() + static_cast<long>(p.object_offset));
  }
}

std::vector<char> read_striped(Objects& objs, const pb::Layout& l, uint64_t off, uint64_t len) {
  std::vector<char> out(len, 0);
  for (const auto& p : coalesce(map_range(l, off, len))) {
    auto& o = objs[{p.component, p.stripe}];
    if (p.object_offset >= o.size()) continue;  // hole: stays zero
    uint64_t n = std::min<uint64_t>(p.length, o.size() - p.object_offset);
    std::copy_n(o.begin() + static_cast<long>(p.object_offset), n, out.begin() + static_cast<long>(p.file_offset - off));
  }
  return out;
}

}  // namespace

TEST_CASE("map_range pieces tile the range and stay inside one stripe unit", "[lustre][layout]") {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    uint32_t targets = 1 + static_cast<uint32_t>(rng() % 8);
    pb::Layout l = random_layout(rng, targets);
    uint64_t off = rng() % (4 << 20);
    uint64_t len = rng() % (2 << 20);
    auto pieces = map_range(l, off, len);
    uint64_t pos = off;
    for (const auto& p : pieces) {
      REQUIRE(p.file_offset == pos);
      REQUIRE(p.length > 0);
      const auto& c = l.components(static_cast<int>(p.component));
      REQUIRE(p.file_offset >= c.extent_start());
      REQUIRE(p.file_offset + p.length <= c.extent_end());
      REQUIRE(p.object_offset % c.stripe_size() + p.length <= c.stripe_size());
      REQUIRE(p.target == c.targets(static_cast<int>(p.stripe)));
      pos += p.length;
    }
    REQUIRE(pos == off + len);
  }
}

TEST_CASE("striped writes and reads match a flat reference file", "[lustre][layout]") {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 40; ++iter) {
    uint32_t targets = 1 + static_cast<uint32_t>(rng() % 8);
    pb::Layout l = random_layout(rng, targets);
    Objects objs;
    std::vector<char> flat;
    for (int op = 0; op < 40; ++op) {
      uint64_t off = rng() % (3 << 20);
      uint64_t len = 1 + rng() % (600 << 10);
      std::vector<char> data = stor::test::pattern(len, rng());
      write_striped(objs, l, off, data);
      if (flat.size() < off + len) flat.resize(off + len, 0);
      std::copy(data.begin(), data.end(), flat.begin() + static_cast<long>(off));
    }
    for (int rd = 0; rd < 40; ++rd) {
      uint64_t off = rng() % flat.size();
      uint64_t len = 1 + rng() % (flat.size() - off);
      auto got = read_striped(objs, l, off, len);
      REQUIRE(std::equal(got.begin(), got.end(), flat.begin() + static_cast<long>(off)));
    }
  }
}

TEST_CASE("coalesce merges only runs that continue in the same object", "[lustre][layout]") {
  pb::Layout one = resolve_layout(make_layout(1, 64 << 10), 4, 0);
  auto merged = coalesce(map_range(one, 1000, 1 << 20));
  REQUIRE(merged.size() == 1);
  REQUIRE(merged[0].length == (1u << 20));
  REQUIRE(merged[0].object_offset == 1000);
  pb::Layout four = resolve_layout(make_layout(4, 64 << 10), 4, 0);
  REQUIRE(coalesce(map_range(four, 0, 1 << 20)).size() == 16);  // every unit switches object
}

TEST_CASE("object_size_for matches the objects of a densely written file", "[lustre][layout]") {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 100; ++iter) {
    uint32_t targets = 1 + static_cast<uint32_t>(rng() % 8);
    pb::Layout l = random_layout(rng, targets);
    uint64_t size = rng() % (5 << 20);
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> ends;
    for (const auto& p : map_range(l, 0, size)) {
      auto& e = ends[{p.component, p.stripe}];
      e = std::max(e, p.object_offset + p.length);
    }
    for (int c = 0; c < l.components_size(); ++c)
      for (int s = 0; s < l.components(c).targets_size(); ++s) {
        auto key = std::make_pair(static_cast<uint32_t>(c), static_cast<uint32_t>(s));
        uint64_t want = ends.count(key) ? ends[key] : 0;
        REQUIRE(*object_size_for(l, key.first, key.second, size) == want);
      }
  }
}

TEST_CASE("progressive layout: first extent on one stripe, the rest on all targets", "[lustre][layout]") {
  LayoutSpec spec{{1, 1 << 20, 0, 64 << 20}, {-1, 1 << 20, -1, kEof}};
  pb::Layout l = resolve_layout(to_layout(spec), 4, 2);
  REQUIRE(validate_layout(l, 4).is_ok());
  REQUIRE(l.components(0).targets_size() == 1);
  REQUIRE(l.components(0).targets(0) == 0);
  REQUIRE(l.components(1).targets_size() == 4);
  auto early = map_range(l, 10 << 20, 4 << 20);
  for (auto& p : early) REQUIRE(p.target == 0);
  auto late = map_range(l, 64 << 20, 4 << 20);
  REQUIRE(late.size() == 4);
  std::set<uint32_t> used;
  for (auto& p : late) used.insert(p.target);
  REQUIRE(used.size() == 4);
  REQUIRE(late[0].object_offset == 0);  // the second component's objects start at 0
}

TEST_CASE("bad layouts are rejected with a clear message", "[lustre][layout]") {
  auto err = [](LayoutSpec spec, uint32_t targets) { return validate_layout(to_layout(spec), targets); };
  auto s = err({{1, 100000}}, 4);
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE_THAT(s.message(), Catch::Contains("multiple of 64 KiB"));
  s = err({{8, 1 << 20}}, 4);
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE_THAT(s.message(), Catch::Contains("exceeds the 4 targets"));
  REQUIRE(err({{0, 1 << 20}}, 4).code() == Code::kInvalidArgument);
  REQUIRE(err({{1, 1 << 20, 4}}, 4).code() == Code::kInvalidArgument);
  REQUIRE(err({{1, 1 << 20, -1, 100000}, {1, 1 << 20}}, 4).code() == Code::kInvalidArgument);
  REQUIRE(err({{-1, 1 << 20}}, 4).is_ok());
  REQUIRE(err({{4, 64 << 10}}, 4).is_ok());
}

TEST_CASE("sizes parse with binary suffixes", "[lustre][layout]") {
  REQUIRE(*parse_size("65536") == 65536);
  REQUIRE(*parse_size("64K") == 65536);
  REQUIRE(*parse_size("1M") == (1u << 20));
  REQUIRE(*parse_size("2g") == (2ull << 30));
  REQUIRE(*parse_size("EOF", true) == kEof);
  REQUIRE(parse_size("x1M").status().code() == Code::kInvalidArgument);
  REQUIRE(parse_size("1Q").status().code() == Code::kInvalidArgument);
  REQUIRE(format_size(1 << 20) == "1M");
}
