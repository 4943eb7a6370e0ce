#include "backends/lustre/layout_driver.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "backends/lustre/layout.h"

namespace stor::lustre {

namespace {

// Values from lustre/lustreapi.h (stable since Lustre 2.7 / 2.10 for PFL).
constexpr uint64_t kLlapiInvalid = 0x1000000000000001ULL;
constexpr uint64_t kLlapiDefault = kLlapiInvalid + 1;
constexpr uint64_t kLlapiWide = kLlapiInvalid + 2;
constexpr uint64_t kLlapiEof = UINT64_MAX;  // LUSTRE_EOF
constexpr int kCompUseFirst = 1, kCompUseNext = 3;

struct llapi_layout;

class LlapiDriver final : public LayoutDriver {
 public:
  static std::unique_ptr<LlapiDriver> load(const std::string& lib, std::string* why) {
    void* h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      *why = std::string("cannot load ") + lib + ": " + ::dlerror();
      return nullptr;
    }
    auto d = std::unique_ptr<LlapiDriver>(new LlapiDriver(h));
    bool ok = d->sym(d->alloc_, "llapi_layout_alloc") && d->sym(d->free_, "llapi_layout_free") &&
              d->sym(d->count_set_, "llapi_layout_stripe_count_set") && d->sym(d->count_get_, "llapi_layout_stripe_count_get") &&
              d->sym(d->size_set_, "llapi_layout_stripe_size_set") && d->sym(d->size_get_, "llapi_layout_stripe_size_get") &&
              d->sym(d->ost_set_, "llapi_layout_ost_index_set") && d->sym(d->ost_get_, "llapi_layout_ost_index_get") &&
              d->sym(d->get_by_path_, "llapi_layout_get_by_path") && d->sym(d->file_open_, "llapi_layout_file_open") &&
              d->sym(d->extent_set_, "llapi_layout_comp_extent_set") && d->sym(d->extent_get_, "llapi_layout_comp_extent_get") &&
              d->sym(d->comp_add_, "llapi_layout_comp_add") && d->sym(d->comp_use_, "llapi_layout_comp_use");
    if (!ok) {
      *why = lib + " lacks llapi_layout_* symbols (Lustre client older than 2.10?)";
      return nullptr;
    }
    return d;
  }
  ~LlapiDriver() override { ::dlclose(handle_); }

  std::string_view name() const override { return "llapi"; }

  Status set_layout(const std::string& path, const pb::Layout& tmpl) override {
    llapi_layout* l = alloc_();
    if (!l) return Status::Internal("llapi_layout_alloc failed");
    Status s = fill(l, tmpl);
    if (s) {
      std::error_code ec;
      bool is_dir = std::filesystem::is_directory(path, ec);
      // On a directory this sets the default layout; on a new path it creates the file.
      int fd = file_open_(path.c_str(), is_dir ? (O_RDONLY | O_DIRECTORY) : (O_WRONLY | O_CREAT), 0644, l);
      if (fd < 0) s = Status::from_errno(errno, "llapi_layout_file_open " + path);
      else ::close(fd);
    }
    free_(l);
    return s;
  }

  Result<pb::Layout> get_layout(const std::string& path) override {
    llapi_layout* l = get_by_path_(path.c_str(), 0);
    if (!l) return Status::from_errno(errno, "llapi_layout_get_by_path " + path);
    pb::Layout out;
    Status s;
    for (int rc = comp_use_(l, kCompUseFirst); rc == 0; rc = comp_use_(l, kCompUseNext)) {
      uint64_t start = 0, end = kLlapiEof, count = 0, size = 0;
      if (extent_get_(l, &start, &end) != 0 || count_get_(l, &count) != 0 || size_get_(l, &size) != 0) {
        s = Status::from_errno(errno, "llapi_layout_*_get " + path);
        break;
      }
      auto* c = out.add_components();
      c->set_extent_start(start);
      c->set_extent_end(end == kLlapiEof ? kEof : end);
      c->set_stripe_count(count == kLlapiWide ? -1 : count >= kLlapiInvalid ? 0 : static_cast<int32_t>(count));
      c->set_stripe_size(size >= kLlapiInvalid ? 0 : size);
      c->set_stripe_offset(-1);
      for (uint64_t i = 0; count < kLlapiInvalid && i < count; ++i) {
        uint64_t idx = 0;
        if (ost_get_(l, i, &idx) != 0 || idx >= kLlapiInvalid) break;  // not instantiated yet
        c->add_targets(static_cast<uint32_t>(idx));
      }
      if (c->targets_size() && c->targets_size() == static_cast<int>(count)) c->set_stripe_offset(static_cast<int32_t>(c->targets(0)));
      else c->clear_targets();
    }
    free_(l);
    if (!s) return s;
    return out;
  }

 private:
  explicit LlapiDriver(void* h) : handle_(h) {}
  template <typename F>
  bool sym(F& fn, const char* name) {
    fn = reinterpret_cast<F>(::dlsym(handle_, name));
    return fn != nullptr;
  }
  Status fill(llapi_layout* l, const pb::Layout& tmpl) {
    for (int i = 0; i < tmpl.components_size(); ++i) {
      const auto& c = tmpl.components(i);
      if (i > 0 && comp_add_(l) != 0) return Status::from_errno(errno, "llapi_layout_comp_add");
      if (tmpl.components_size() > 1 &&
          extent_set_(l, c.extent_start(), c.extent_end() == kEof ? kLlapiEof : c.extent_end()) != 0)
        return Status::from_errno(errno, "llapi_layout_comp_extent_set");
      uint64_t count = c.stripe_count() < 0 ? kLlapiWide : static_cast<uint64_t>(c.stripe_count());
      if (count_set_(l, count) != 0 || size_set_(l, c.stripe_size()) != 0)
        return Status::from_errno(errno, "llapi_layout_stripe_*_set");
      if (c.stripe_offset() >= 0 && ost_set_(l, 0, static_cast<uint64_t>(c.stripe_offset())) != 0)
        return Status::from_errno(errno, "llapi_layout_ost_index_set");
    }
    return Status::ok();
  }

  void* handle_;
  llapi_layout* (*alloc_)() = nullptr;
  void (*free_)(llapi_layout*) = nullptr;
  int (*count_set_)(llapi_layout*, uint64_t) = nullptr;
  int (*count_get_)(const llapi_layout*, uint64_t*) = nullptr;
  int (*size_set_)(llapi_layout*, uint64_t) = nullptr;
  int (*size_get_)(const llapi_layout*, uint64_t*) = nullptr;
  int (*ost_set_)(llapi_layout*, int, uint64_t) = nullptr;
  int (*ost_get_)(const llapi_layout*, uint64_t, uint64_t*) = nullptr;
  llapi_layout* (*get_by_path_)(const char*, uint32_t) = nullptr;
  int (*file_open_)(const char*, int, int, const llapi_layout*) = nullptr;
  int (*extent_set_)(llapi_layout*, uint64_t, uint64_t) = nullptr;
  int (*extent_get_)(const llapi_layout*, uint64_t*, uint64_t*) = nullptr;
  int (*comp_add_)(llapi_layout*) = nullptr;
  int (*comp_use_)(llapi_layout*, uint32_t) = nullptr;
};

}  // namespace

namespace {
std::mutex g_probe_mu;
LayoutDriverProbe& probe_override() {
  static auto* p = new LayoutDriverProbe();
  return *p;
}
}  // namespace

void set_layout_driver_probe_for_testing(LayoutDriverProbe probe) {
  std::lock_guard lk(g_probe_mu);
  probe_override() = std::move(probe);
}

LayoutDriverChoice detect_layout_driver(const std::string& host_path, const std::string& library) {
  {
    LayoutDriverProbe probe;
    {
      std::lock_guard lk(g_probe_mu);
      probe = probe_override();
    }
    if (probe) return probe(host_path);
  }
  LayoutDriverChoice out;
  // Probe the nearest existing ancestor: the file itself may not exist yet.
  std::filesystem::path p = host_path.empty() ? "/" : host_path;
  std::error_code ec;
  while (!p.empty() && p != p.root_path() && !std::filesystem::exists(p, ec)) p = p.parent_path();
  struct statfs sfs {};
  if (::statfs(p.c_str(), &sfs) != 0) {
    out.reason = "statfs " + p.string() + " failed (" + std::strerror(errno) + "); using the emulation";
    return out;
  }
  if (static_cast<int64_t>(sfs.f_type) != kLustreSuperMagic) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s is not on a Lustre mount (statfs f_type 0x%llx, Lustre is 0x%llx); using the emulation",
                  p.c_str(), static_cast<unsigned long long>(sfs.f_type), static_cast<unsigned long long>(kLustreSuperMagic));
    out.reason = buf;
    return out;
  }
  std::string why;
  std::string lib = library.empty() ? "liblustreapi.so.1" : library;
  auto d = LlapiDriver::load(lib, &why);
  if (!d && library.empty()) d = LlapiDriver::load("liblustreapi.so", &why);
  if (!d) {
    out.reason = p.string() + " is on Lustre but " + why + "; using the emulation";
    return out;
  }
  out.native = std::move(d);
  out.reason = p.string() + " is on a Lustre mount and liblustreapi is loaded; layouts go through llapi";
  return out;
}

}  // namespace stor::lustre
