# Shared setup for scripts/clnorm and scripts/test: make sure Java 17+, Maven and an OpenCL
# runtime are present, installing Debian's packages when they are missing and we are allowed to.
# Every step says what it is doing. Sourced, not executed.

log() { printf '[clnorm] %s\n' "$*" >&2; }

# Runs apt-get as root directly, or through sudo when that works without a password.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

can_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_java_maven() {
  local need=()
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then need+=(openjdk-17-jdk-headless); fi
  if ! command -v mvn >/dev/null 2>&1; then need+=(maven); fi
  if [ ${#need[@]} -gt 0 ]; then
    if can_install; then
      log "installing ${need[*]} (Java 17 and Maven are needed to build clnorm)"
      apt_install "${need[@]}" || { log "installing ${need[*]} failed"; return 1; }
    else
      log "missing ${need[*]}: install a JDK 17+ and Maven, then run this again"; return 1
    fi
  fi
}

# True when an OpenCL ICD (a vendor runtime registered with the loader) is installed.
opencl_runtime_present() {
  [ -n "${OCL_ICD_VENDORS:-}" ] && return 0
  ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1 || return 1
  ldconfig -p 2>/dev/null | grep -q 'libOpenCL\.so' || [ -e /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 ]
}

# Installs POCL (a CPU OpenCL runtime) when no OpenCL runtime exists and we may install.
# Returns non-zero only when an install was attempted and failed.
ensure_opencl() {
  if opencl_runtime_present; then
    log "OpenCL runtime found: $(ls /etc/OpenCL/vendors/ 2>/dev/null | tr '\n' ' ')"
    return 0
  fi
  if can_install; then
    log "no OpenCL runtime found: installing POCL (pocl-opencl-icd, ocl-icd-libopencl1) from Debian's packages"
    apt_install pocl-opencl-icd ocl-icd-libopencl1 clinfo || { log "installing POCL failed"; return 1; }
  else
    log "no OpenCL runtime found and no permission to install one; clnorm will use its pure-Java backend"
  fi
}

# Builds the runnable jar when it is missing or older than any source, kernel or the pom.
ensure_jar() {
  local root=$1 jar
  jar=$(ls "$root"/target/clnorm-*-cli.jar 2>/dev/null | head -n 1 || true)
  if [ -z "$jar" ] || [ -n "$(find "$root/src/main" "$root/opencl-kernels" "$root/pom.xml" -newer "$jar" -print -quit)" ]; then
    log "building the clnorm jar (mvn -B -q -Dstyle.color=never -DskipTests package)"
    (cd "$root" && mvn -B -q -Dstyle.color=never -DskipTests package) >&2 || { log "build failed"; return 1; }
    jar=$(ls "$root"/target/clnorm-*-cli.jar | head -n 1)
  fi
  CLNORM_JAR=$jar
}
