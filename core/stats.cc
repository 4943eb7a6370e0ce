#include "core/stats.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>

namespace stor::internal {

namespace {
std::atomic<unsigned> g_store_seq{0};
}

std::shared_ptr<StatsRegistry> StatsRegistry::create(bool publish, const std::string& dir) {
  std::shared_ptr<StatsRegistry> r(new StatsRegistry);
  if (publish) {
    std::string path = dir + "/stor-stats." + std::to_string(::getpid()) + "." + std::to_string(g_store_seq++);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && ::ftruncate(fd, sizeof(StatsPage)) == 0) {
      void* p = ::mmap(nullptr, sizeof(StatsPage), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        r->page_ = new (p) StatsPage{};
        r->mapped_ = true;
        r->path_ = path;
      }
    }
    if (fd >= 0) ::close(fd);
    if (!r->mapped_) ::unlink(path.c_str());  // publishing is best effort: count privately
  }
  if (!r->page_) r->page_ = new StatsPage{};
  r->page_->pid = ::getpid();
  r->page_->version = StatsPage::kVersion;
  r->page_->magic = StatsPage::kMagic;  // last: readers trust the page once the magic is there
  return r;
}

StatsRegistry::~StatsRegistry() {
  if (mapped_) {
    ::munmap(page_, sizeof(StatsPage));
    ::unlink(path_.c_str());
  } else {
    delete page_;
  }
}

SchemeCounters* StatsRegistry::counters(const std::string& scheme) {
  std::lock_guard lk(mu_);
  unsigned used = page_->slots_used;
  for (unsigned i = 0; i < used; ++i)
    if (scheme == page_->slots[i].scheme) return &page_->slots[i];
  if (used == StatsPage::kSlots) return &page_->slots[StatsPage::kSlots - 1];
  SchemeCounters& c = page_->slots[used];
  std::snprintf(c.scheme, sizeof c.scheme, "%s", scheme.c_str());
  page_->slots_used = used + 1;
  return &c;
}

std::vector<BackendStats> snapshot_page(const StatsPage& page) {
  std::vector<BackendStats> out;
  unsigned used = std::min(page.slots_used, StatsPage::kSlots);
  for (unsigned i = 0; i < used; ++i) {
    const SchemeCounters& c = page.slots[i];
    BackendStats b;
    b.scheme.assign(c.scheme, strnlen(c.scheme, sizeof c.scheme));
    b.read_ops = c.read_ops.load(std::memory_order_relaxed);
    b.write_ops = c.write_ops.load(std::memory_order_relaxed);
    b.read_bytes = c.read_bytes.load(std::memory_order_relaxed);
    b.write_bytes = c.write_bytes.load(std::memory_order_relaxed);
    b.errors = c.errors.load(std::memory_order_relaxed);
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<BackendStats> StatsRegistry::snapshot() const { return snapshot_page(*page_); }

}  // namespace stor::internal

namespace stor {

Result<std::vector<ProcessStats>> read_published_stats(const std::string& dir) {
  std::vector<ProcessStats> out;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("stor-stats.", 0) != 0) continue;
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    void* p = ::mmap(nullptr, sizeof(internal::StatsPage), PROT_READ, MAP_SHARED, fd, 0);
    struct stat st {};
    bool big_enough = ::fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(sizeof(internal::StatsPage));
    ::close(fd);
    if (p == MAP_FAILED) continue;
    auto* page = static_cast<const internal::StatsPage*>(p);
    if (big_enough && page->magic == internal::StatsPage::kMagic && page->version == internal::StatsPage::kVersion) {
      if (::kill(page->pid, 0) != 0 && errno == ESRCH) {
        std::filesystem::remove(entry.path(), ec);  // its process died without cleaning up
      } else {
        out.push_back(ProcessStats{page->pid, entry.path().string(), internal::snapshot_page(*page)});
      }
    }
    ::munmap(p, sizeof(internal::StatsPage));
  }
  if (ec) return Status::NotFound("stats directory " + dir + ": " + ec.message());
  return out;
}

}  // namespace stor
