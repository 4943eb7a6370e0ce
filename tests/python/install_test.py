"""Installs the build into a scratch prefix and imports stor and stor.torch from there only."""
import os
import shutil
import subprocess
import sys

cmake, build, scratch, site_rel = sys.argv[1:5]
shutil.rmtree(scratch, ignore_errors=True)
prefix = os.path.join(scratch, "prefix")
subprocess.run([cmake, "--install", build, "--prefix", prefix], check=True, stdout=subprocess.DEVNULL)
site = site_rel if os.path.isabs(site_rel) else os.path.join(prefix, site_rel)
assert os.path.isdir(os.path.join(site, "stor")), f"no stor package under {site}"
env = dict(os.environ, PYTHONPATH=site)
code = ("import stor, stor.torch, sys\n"
        "assert stor.__file__.startswith(sys.argv[1]), stor.__file__\n"
        "stor.write_bytes(sys.argv[2], b'installed')\n"
        "assert stor.read_bytes(sys.argv[2]) == b'installed'\n"
        "print(stor.version(), stor.engine())\n")
out = subprocess.run([sys.executable, "-c", code, site, "nvme://" + os.path.join(scratch, "probe.bin")],
                     env=env, cwd=scratch, capture_output=True, text=True)
if out.returncode != 0:
    sys.exit(f"importing the installed package failed:\n{out.stdout}{out.stderr}")
print("python_install: imported from", site, "-", out.stdout.strip())
