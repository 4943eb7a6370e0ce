// The common start of the cluster-mode tests (test_cluster, test_dne): a key file, two
// stor-target daemons (child processes) on 127.0.0.1 holding it, and stores that mount with it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/lustre/lustre_admin.h"
#include "net/auth.h"
#include "stor/store.h"
#include "target_process.h"
#include "test_util.h"

namespace stor::test {

struct TwoTargets {
  TempDir base, ost0, ost1;
  std::string key;
  std::unique_ptr<TargetProcess> t0, t1;

  TwoTargets() {
    key = base / "fs.key";
    REQUIRE(transport::write_key_file(key, transport::AuthKey::generate().value()).is_ok());
    t0 = std::make_unique<TargetProcess>(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path(),
                                         std::vector<std::string>{"--key-file", key});
    t1 = std::make_unique<TargetProcess>(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path(),
                                         std::vector<std::string>{"--key-file", key});
  }
  // A file system on both targets with this key: 64 KiB stripes over all of them, root 0777.
  lustre::MkfsOptions mkfs_options() const {
    lustre::MkfsOptions o;
    o.target_endpoints = {t0->endpoint(), t1->endpoint()};
    o.default_layout = {lustre::StripeSpec{-1, 64 << 10}};
    o.key_file = key;
    o.root_mode = 0777;
    return o;
  }
  // A store whose lustre mounts present this key unless settings name another.
  std::unique_ptr<Store> store(std::map<std::string, std::string> settings = {}) const {
    StoreOptions so;
    so.settings = std::move(settings);
    if (!so.settings.count("lustre.key_file")) so.settings["lustre.key_file"] = key;
    return Store::create(so).value();
  }
};

}  // namespace stor::test
