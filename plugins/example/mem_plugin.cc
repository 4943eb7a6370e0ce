// Example stor plugin: a process-local in-memory file system for "mem://name/path" URIs.
// It depends only on include/stor/plugin.h (plain C ABI), not on libstor, and shows the contract:
// fill stor_plugin_error on failure, never throw, be thread safe.
#include <stor/plugin.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace {

// Codes from stor_code_t, repeated here so the plugin needs no other header.
enum { kInvalid = 1, kNotFound = 2, kExists = 4, kIsDir = 9, kNotEmpty = 10, kInternal = 17 };

int fail(stor_plugin_error* err, int code, const std::string& msg) {
  if (err) {
    err->code = code;
    std::snprintf(err->message, sizeof err->message, "%s", msg.c_str());
  }
  return -1;
}

struct Node {
  bool dir = false;
  std::vector<char> data;
  std::shared_mutex mu;
};

struct MemFs {
  std::mutex mu;  // guards the namespace map; Node::mu guards one file's bytes
  std::map<std::string, std::shared_ptr<Node>> nodes;  // key: "authority/path"
};

struct MemFile {
  std::shared_ptr<Node> node;
  bool writable;
};

// "mem://a/x/y" -> "a/x/y"; the bucket-like authority "a" is the root directory.
std::string key_of(const char* authority, const char* path) {
  std::string k = std::string(authority) + path;
  while (k.size() > 1 && k.back() == '/') k.pop_back();
  return k;
}

std::string parent_of(const std::string& key) {
  auto pos = key.find_last_of('/');
  return pos == std::string::npos ? std::string() : key.substr(0, pos);
}

void* mem_create(const char* const*, stor_plugin_error*) { return new MemFs; }
void mem_destroy(void* fs) { delete static_cast<MemFs*>(fs); }

void* mem_open(void* fsp, const char* authority, const char* path, uint32_t flags, uint32_t, stor_plugin_error* err) {
  auto* fs = static_cast<MemFs*>(fsp);
  const uint32_t kWrite = 1u << 1, kCreate = 1u << 2, kTrunc = 1u << 3, kExcl = 1u << 4;
  std::string k = key_of(authority, path);
  std::lock_guard lk(fs->mu);
  auto it = fs->nodes.find(k);
  if (it == fs->nodes.end()) {
    if (!(flags & kCreate)) return fail(err, kNotFound, "mem: no such file " + k), nullptr;
    it = fs->nodes.emplace(k, std::make_shared<Node>()).first;
  } else if (flags & kExcl) {
    return fail(err, kExists, "mem: file exists " + k), nullptr;
  }
  if (it->second->dir) return fail(err, kIsDir, "mem: is a directory " + k), nullptr;
  if (flags & kTrunc) {
    std::unique_lock fl(it->second->mu);
    it->second->data.clear();
  }
  return new MemFile{it->second, (flags & kWrite) != 0};
}

int64_t mem_pread(void* fp, void* buf, uint64_t len, uint64_t off, stor_plugin_error*) {
  auto* f = static_cast<MemFile*>(fp);
  std::shared_lock lk(f->node->mu);
  auto& d = f->node->data;
  if (off >= d.size()) return 0;
  uint64_t n = std::min<uint64_t>(len, d.size() - off);
  std::memcpy(buf, d.data() + off, n);
  return static_cast<int64_t>(n);
}

int64_t mem_pwrite(void* fp, const void* buf, uint64_t len, uint64_t off, stor_plugin_error* err) {
  auto* f = static_cast<MemFile*>(fp);
  if (!f->writable) return fail(err, kInvalid, "mem: file not open for writing");
  std::unique_lock lk(f->node->mu);
  auto& d = f->node->data;
  if (off + len > d.size()) d.resize(off + len);
  std::memcpy(d.data() + off, buf, len);
  return static_cast<int64_t>(len);
}

int mem_sync(void*, int, stor_plugin_error*) { return 0; }  // memory: nothing to persist

int mem_truncate(void* fp, uint64_t size, stor_plugin_error* err) {
  auto* f = static_cast<MemFile*>(fp);
  if (!f->writable) return fail(err, kInvalid, "mem: file not open for writing");
  std::unique_lock lk(f->node->mu);
  f->node->data.resize(size);
  return 0;
}

int mem_fstat(void* fp, stor_plugin_stat* out, stor_plugin_error*) {
  auto* f = static_cast<MemFile*>(fp);
  std::shared_lock lk(f->node->mu);
  *out = stor_plugin_stat{f->node->data.size(), 0644, 0, 0};
  return 0;
}

int mem_close(void* fp, stor_plugin_error*) {
  delete static_cast<MemFile*>(fp);
  return 0;
}

int mem_stat(void* fsp, const char* authority, const char* path, stor_plugin_stat* out, stor_plugin_error* err) {
  auto* fs = static_cast<MemFs*>(fsp);
  std::string k = key_of(authority, path);
  std::lock_guard lk(fs->mu);
  auto it = fs->nodes.find(k);
  if (it == fs->nodes.end()) return fail(err, kNotFound, "mem: no such file " + k);
  std::shared_lock fl(it->second->mu);
  *out = stor_plugin_stat{it->second->data.size(), it->second->dir ? 0755u : 0644u, it->second->dir ? 1 : 0, 0};
  return 0;
}

int mem_list(void* fsp, const char* authority, const char* path, stor_plugin_list_emit emit, void* ctx,
             stor_plugin_error* err) {
  auto* fs = static_cast<MemFs*>(fsp);
  std::string k = key_of(authority, path);
  std::lock_guard lk(fs->mu);
  bool root = k.find('/') == std::string::npos;
  auto it = fs->nodes.find(k);
  if (!root && (it == fs->nodes.end() || !it->second->dir)) return fail(err, kNotFound, "mem: no such directory " + k);
  for (auto& [name, node] : fs->nodes) {
    if (parent_of(name) != k) continue;
    std::shared_lock fl(node->mu);
    emit(ctx, name.substr(k.size() + 1).c_str(), node->dir ? 1 : 0, node->data.size());
  }
  return 0;
}

int mem_remove(void* fsp, const char* authority, const char* path, stor_plugin_error* err) {
  auto* fs = static_cast<MemFs*>(fsp);
  std::string k = key_of(authority, path);
  std::lock_guard lk(fs->mu);
  auto it = fs->nodes.find(k);
  if (it == fs->nodes.end()) return fail(err, kNotFound, "mem: no such file " + k);
  for (auto& [name, node] : fs->nodes)
    if (parent_of(name) == k) return fail(err, kNotEmpty, "mem: directory not empty " + k);
  fs->nodes.erase(it);
  return 0;
}

int mem_mkdir(void* fsp, const char* authority, const char* path, uint32_t, stor_plugin_error* err) {
  auto* fs = static_cast<MemFs*>(fsp);
  std::string k = key_of(authority, path);
  std::lock_guard lk(fs->mu);
  if (fs->nodes.count(k)) return fail(err, kExists, "mem: exists " + k);
  auto node = std::make_shared<Node>();
  node->dir = true;
  fs->nodes.emplace(k, node);
  return 0;
}

const stor_plugin_ops kOps = {
    STOR_PLUGIN_ABI_VERSION, sizeof(stor_plugin_ops), "mem",
    /* capabilities: read, write, random-write, directories, truncate */ 0x1 | 0x2 | 0x4 | 0x10 | 0x20,
    mem_create, mem_destroy, mem_open, mem_pread, mem_pwrite, mem_sync, mem_truncate, mem_fstat, mem_close,
    mem_stat, mem_list, mem_remove, mem_mkdir,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) int stor_plugin_init(uint32_t host_abi, const stor_plugin_ops** ops) {
  if (host_abi != STOR_PLUGIN_ABI_VERSION) return kInvalid;
  *ops = &kOps;
  return 0;
}
