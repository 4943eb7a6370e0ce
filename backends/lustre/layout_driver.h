// The seam between the emulated layout store (our MDS) and real Lustre.
//
// On a real Lustre client mount, with liblustreapi loadable at run time, layouts are set and read
// through llapi_layout_* on the host path itself; everywhere else the emulation serves them. The
// library is dlopen()ed so stor neither needs Lustre headers to build nor the library to run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "backends/lustre/lustre.pb.h"
#include "stor/status.h"

namespace stor::lustre {

inline constexpr int64_t kLustreSuperMagic = 0x0BD00BD0;  // statfs f_type of a Lustre client mount

class LayoutDriver {
 public:
  virtual ~LayoutDriver() = default;
  virtual std::string_view name() const = 0;  // "emulated" or "llapi"
  // Sets a directory's default layout, or creates a missing file with the layout.
  virtual Status set_layout(const std::string& path, const pb::Layout& layout_template) = 0;
  // The layout of a file, or a directory's default.
  virtual Result<pb::Layout> get_layout(const std::string& path) = 0;
};

struct LayoutDriverChoice {
  std::unique_ptr<LayoutDriver> native;  // the llapi driver, or null: use the emulation
  std::string reason;                    // why, for `stctl info`
};

// Tests only: replaces the probe (statfs + dlopen) used by detect_layout_driver(); an empty
// function restores it. Lets tests drive the native-Lustre code paths with a fake driver.
using LayoutDriverProbe = std::function<LayoutDriverChoice(const std::string& host_path)>;
void set_layout_driver_probe_for_testing(LayoutDriverProbe probe);

// Picks the llapi driver for host_path when it is on a Lustre mount and the library loads.
// `library` overrides the dlopen name (tests use it to force the library-missing branch).
LayoutDriverChoice detect_layout_driver(const std::string& host_path, const std::string& library = "");

}  // namespace stor::lustre
