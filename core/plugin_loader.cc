#include "core/plugin_loader.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/task_pool.h"
#include "stor/backend.h"

namespace stor::internal {

namespace {

Status plugin_status(const stor_plugin_error& e, const char* op) {
  Code code = (e.code > 0 && e.code <= static_cast<int>(Code::kInternal)) ? static_cast<Code>(e.code) : Code::kInternal;
  return {code, std::string(op) + ": " + (e.message[0] ? e.message : "plugin reported an error")};
}

FileInfo to_file_info(const stor_plugin_stat& st, std::string path) {
  FileInfo info;
  info.path = std::move(path);
  info.size = st.size;
  info.mode = st.mode;
  info.type = st.type == 1 ? FileType::kDirectory : FileType::kRegular;
  info.mtime_ns = st.mtime_ns;
  return info;
}

// Adapts a plugin's synchronous C calls to the async Backend interface.
class PluginFile final : public BackendFile {
 public:
  PluginFile(const stor_plugin_ops* ops, void* handle, std::shared_ptr<TaskPool> pool, std::string path)
      : ops_(ops), handle_(handle), pool_(std::move(pool)), path_(std::move(path)) {}
  ~PluginFile() override { (void)close(); }

  // The handle is checked on the calling thread: BackendFile's contract has close() come after
  // every callback, so it cannot change under a request already posted.
  void read_async(void* buf, size_t len, uint64_t off, IoCallback done) override {
    if (!handle_) return done(closed());
    pool_->post([this, buf, len, off, done = std::move(done)] {
      stor_plugin_error e{};
      int64_t n = ops_->pread(handle_, buf, len, off, &e);
      done(n < 0 ? Result<size_t>(plugin_status(e, "pread")) : Result<size_t>(static_cast<size_t>(n)));
    });
  }
  void write_async(const void* buf, size_t len, uint64_t off, IoCallback done) override {
    if (!handle_) return done(closed());
    pool_->post([this, buf, len, off, done = std::move(done)] {
      stor_plugin_error e{};
      int64_t n = ops_->pwrite(handle_, buf, len, off, &e);
      done(n < 0 ? Result<size_t>(plugin_status(e, "pwrite")) : Result<size_t>(static_cast<size_t>(n)));
    });
  }
  Status sync(bool data_only) override {
    if (!handle_) return closed();
    stor_plugin_error e{};
    return ops_->sync(handle_, data_only ? 1 : 0, &e) == 0 ? Status() : plugin_status(e, "sync");
  }
  Status truncate(uint64_t size) override {
    if (!handle_) return closed();
    stor_plugin_error e{};
    return ops_->truncate(handle_, size, &e) == 0 ? Status() : plugin_status(e, "truncate");
  }
  Result<FileInfo> stat() override {
    if (!handle_) return closed();
    stor_plugin_error e{};
    stor_plugin_stat st{};
    if (ops_->fstat(handle_, &st, &e) != 0) return plugin_status(e, "fstat");
    return to_file_info(st, path_);
  }
  Status close() override {
    if (!handle_) return {};
    stor_plugin_error e{};
    int rc = ops_->close(handle_, &e);
    handle_ = nullptr;
    return rc == 0 ? Status() : plugin_status(e, "close");
  }

 private:
  Status closed() const { return Status::InvalidArgument(path_ + ": file is closed"); }

  const stor_plugin_ops* ops_;
  void* handle_;
  std::shared_ptr<TaskPool> pool_;
  std::string path_;
};

class PluginBackend final : public Backend {
 public:
  PluginBackend(const stor_plugin_ops* ops, void* handle)
      : ops_(ops), handle_(handle), pool_(std::make_shared<TaskPool>(4)) {}
  ~PluginBackend() override {
    pool_.reset();
    ops_->destroy(handle_);
  }

  std::string_view scheme() const override { return ops_->scheme; }
  uint32_t capabilities() const override { return ops_->capabilities; }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) override {
    // The plugin ABI predates kOpenAppend: a plugin would take the offsets as given.
    if (opts.flags & kOpenAppend)
      return Status::Unsupported(std::string(ops_->scheme) + ": appending opens (kOpenAppend) are not supported by plugins");
    stor_plugin_error e{};
    void* f = ops_->open(handle_, uri.authority.c_str(), uri.path.c_str(), opts.flags, opts.mode, &e);
    if (!f) return plugin_status(e, "open");
    return std::unique_ptr<BackendFile>(new PluginFile(ops_, f, pool_, uri.to_string()));
  }
  Result<FileInfo> stat(const Uri& uri) override {
    stor_plugin_error e{};
    stor_plugin_stat st{};
    if (ops_->stat(handle_, uri.authority.c_str(), uri.path.c_str(), &st, &e) != 0) return plugin_status(e, "stat");
    return to_file_info(st, uri.to_string());
  }
  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    std::vector<DirEntry> out;
    stor_plugin_error e{};
    auto emit = [](void* ctx, const char* name, int type, uint64_t size) {
      static_cast<std::vector<DirEntry>*>(ctx)->push_back(
          DirEntry{name, type == 1 ? FileType::kDirectory : FileType::kRegular, size});
    };
    if (ops_->list(handle_, uri.authority.c_str(), uri.path.c_str(), emit, &out, &e) != 0) return plugin_status(e, "list");
    return out;
  }
  Status remove(const Uri& uri) override {
    stor_plugin_error e{};
    return ops_->remove(handle_, uri.authority.c_str(), uri.path.c_str(), &e) == 0 ? Status() : plugin_status(e, "remove");
  }
  Status mkdir(const Uri& uri, uint32_t mode) override {
    stor_plugin_error e{};
    return ops_->mkdir(handle_, uri.authority.c_str(), uri.path.c_str(), mode, &e) == 0 ? Status()
                                                                                      : plugin_status(e, "mkdir");
  }
  std::map<std::string, std::string> describe(const Uri&) override { return {{"plugin", "yes"}}; }

 private:
  const stor_plugin_ops* ops_;
  void* handle_;
  std::shared_ptr<TaskPool> pool_;
};

std::mutex g_mu;
std::set<std::string> g_loaded;  // canonical paths already registered

Status check_ops(const stor_plugin_ops* ops, const std::string& origin) {
  if (!ops) return Status::InvalidArgument(origin + ": stor_plugin_init returned no ops table");
  if (ops->abi_version != STOR_PLUGIN_ABI_VERSION)
    return Status::Unsupported(origin + ": plugin ABI version " + std::to_string(ops->abi_version) +
                                    ", host speaks " + std::to_string(STOR_PLUGIN_ABI_VERSION));
  if (ops->struct_size < sizeof(stor_plugin_ops))
    return Status::Unsupported(origin + ": plugin ops table is smaller than this host expects");
  if (!ops->scheme || !*ops->scheme) return Status::InvalidArgument(origin + ": plugin declares no scheme");
  bool complete = ops->create && ops->destroy && ops->open && ops->pread && ops->pwrite && ops->sync &&
                  ops->truncate && ops->fstat && ops->close && ops->stat && ops->list && ops->remove && ops->mkdir;
  if (!complete) return Status::InvalidArgument(origin + ": plugin ops table has null entries");
  return {};
}

}  // namespace

Status register_plugin_ops(const stor_plugin_ops* ops, const std::string& origin) {
  STOR_RETURN_IF_ERROR(check_ops(ops, origin));
  return BackendRegistry::global().add(ops->scheme, [ops](const BackendContext& ctx) -> Result<std::shared_ptr<Backend>> {
    std::vector<std::string> kv;
    for (auto& [k, v] : ctx.settings) kv.push_back(k + "=" + v);
    std::vector<const char*> argv;
    for (auto& s : kv) argv.push_back(s.c_str());
    argv.push_back(nullptr);
    stor_plugin_error e{};
    void* handle = ops->create(argv.data(), &e);
    if (!handle) return plugin_status(e, "plugin create");
    return std::shared_ptr<Backend>(new PluginBackend(ops, handle));
  });
}

Status load_plugin(const std::string& path) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(path, ec);
  if (ec) return Status::NotFound("plugin " + path + ": " + ec.message());
  std::lock_guard lk(g_mu);
  if (g_loaded.count(canonical.string())) return {};
  // RTLD_NODELETE: backends created from it may outlive any handle we keep.
  void* lib = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!lib) return Status::InvalidArgument(std::string("dlopen ") + path + ": " + dlerror());
  auto init = reinterpret_cast<stor_plugin_init_fn>(dlsym(lib, "stor_plugin_init"));
  if (!init) {
    dlclose(lib);
    return Status::InvalidArgument(path + " is not a stor plugin (no stor_plugin_init symbol)");
  }
  const stor_plugin_ops* ops = nullptr;
  int rc = init(STOR_PLUGIN_ABI_VERSION, &ops);
  if (rc != 0) {
    dlclose(lib);
    return Status::Unsupported(path + ": stor_plugin_init failed with code " + std::to_string(rc));
  }
  Status s = register_plugin_ops(ops, path);
  if (!s.is_ok()) {
    dlclose(lib);
    return s;
  }
  g_loaded.insert(canonical.string());
  return {};
}

Status load_plugin_dir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> libs;
  for (auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind("lib", 0) == 0 && entry.path().extension() == ".so") libs.push_back(entry.path().string());
  }
  if (ec) return Status::NotFound("plugin directory " + dir + ": " + ec.message());
  std::sort(libs.begin(), libs.end());
  for (auto& lib : libs) STOR_RETURN_IF_ERROR(load_plugin(lib));
  return {};
}

}  // namespace stor::internal
