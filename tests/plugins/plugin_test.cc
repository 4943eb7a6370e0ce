#include <catch2/catch.hpp>
#include <filesystem>

#include "stor/store.h"
#include "io_check.h"
#include "test_util.h"

using namespace stor;

TEST_CASE("the example plugin loads with dlopen and serves mem:// URIs") {
  auto store = Store::create({});
  REQUIRE(store.is_ok());
  auto& s = **store;
  REQUIRE(s.load_plugin(STOR_TEST_PLUGIN_MEM).is_ok());
  REQUIRE(s.load_plugin(STOR_TEST_PLUGIN_MEM).is_ok());  // idempotent

  REQUIRE(s.mkdir("mem://bucket/dir").is_ok());
  auto f = s.open("mem://bucket/dir/obj", kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  auto data = test::pattern(100000, 6);
  REQUIRE(*f->write(data.data(), data.size(), 0) == data.size());
  std::vector<char> back(data.size());
  REQUIRE(f->read_exact(back.data(), back.size(), 0).is_ok());
  CHECK(back == data);
  CHECK(*f->size() == data.size());
  REQUIRE(f->truncate(10).is_ok());
  REQUIRE(f->sync().is_ok());
  REQUIRE(f->close().is_ok());

  auto ls = s.list("mem://bucket/dir");
  REQUIRE(ls.is_ok());
  REQUIRE(ls->size() == 1);
  CHECK((*ls)[0].name == "obj");
  CHECK((*ls)[0].size == 10);

  // Errors from the plugin come back with their code and message.
  // The plugin ABI has no append flag: refused before the plugin sees the open.
  CHECK(s.open("mem://bucket/dir/obj", kOpenWrite | kOpenAppend).status().code() == Code::kUnsupported);
  auto missing = s.open("mem://bucket/none");
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message().find("no such file") != std::string::npos);
  CHECK(s.remove("mem://bucket/dir").code() == Code::kNotEmpty);
  REQUIRE(s.remove("mem://bucket/dir/obj").is_ok());
  REQUIRE(s.remove("mem://bucket/dir").is_ok());
  CHECK(s.describe("mem://bucket/x").at("backend") == "mem");
}

TEST_CASE("vectored I/O on a plugin file takes the default path: one plugin call per segment", "[vectored]") {
  auto store = Store::create({}).value();
  REQUIRE(store->load_plugin(STOR_TEST_PLUGIN_MEM).is_ok());
  REQUIRE(store->mkdir("mem://vb/d").is_ok());
  auto f = store->open("mem://vb/d/v", kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  test::check_vectored_round_trip(*f->backend_file(), 200000, 99, 9000, 3);
  REQUIRE(f->close().is_ok());
}

TEST_CASE("a closed plugin file refuses calls instead of passing the plugin a freed handle", "[concurrency]") {
  auto store = Store::create({}).value();
  REQUIRE(store->load_plugin(STOR_TEST_PLUGIN_MEM).is_ok());
  REQUIRE(store->mkdir("mem://cb/d").is_ok());
  auto f = store->open("mem://cb/d/x", kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  BackendFile* raw = f->backend_file();
  REQUIRE(raw->close().is_ok());
  char buf[4];
  CHECK(raw->read(buf, 4, 0).status().code() == Code::kInvalidArgument);
  CHECK(raw->write(buf, 4, 0).status().code() == Code::kInvalidArgument);
  CHECK(raw->stat().status().code() == Code::kInvalidArgument);
  CHECK(raw->sync(false).code() == Code::kInvalidArgument);
}

TEST_CASE("plugins load from a directory, as StoreOptions::plugin_dir") {
  StoreOptions o;
  o.plugin_dir = std::filesystem::path(STOR_TEST_PLUGIN_MEM).parent_path().string();
  auto store = Store::create(o);
  REQUIRE(store.is_ok());
  auto f = (*store)->open("mem://b/k", kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
}

TEST_CASE("bad plugins are refused with clear errors") {
  auto store = Store::create({});
  REQUIRE(store.is_ok());
  auto& s = **store;
  auto abi = s.load_plugin(STOR_TEST_PLUGIN_BAD);
  CHECK(abi.code() == Code::kUnsupported);
  CHECK(abi.message().find("ABI version") != std::string::npos);
  CHECK(s.open("bad://x/y").status().code() == Code::kNotFound);

  auto not_plugin = s.load_plugin(STOR_TEST_NOT_A_PLUGIN);
  CHECK(not_plugin.code() == Code::kInvalidArgument);
  CHECK(not_plugin.message().find("stor_plugin_init") != std::string::npos);

  CHECK(s.load_plugin("/nonexistent/libx.so").code() == Code::kNotFound);
  CHECK(s.load_plugins("/nonexistent-dir").code() == Code::kNotFound);
}
