# Reads Surefire XML reports and prints "<total> <opencl_ran> <opencl_skipped>": how many test
# cases there were, how many ran on an OpenCL device (their display name carries a device id
# "opencl:<platform>:<device>") and how many of those were skipped.
function finish() {
  if (!open) return
  total++
  if (name ~ /opencl:[0-9]+:[0-9]+/) { if (skipped) oskip++; else oran++ }
  open = 0
}
/<testcase / {
  finish()
  open = 1; skipped = 0
  name = ""
  if (match($0, / name="[^"]*"/)) name = substr($0, RSTART + 7, RLENGTH - 8)
  if ($0 ~ /\/>[[:space:]]*$/) finish()
  next
}
open && /<skipped/ { skipped = 1 }
open && /<\/testcase>/ { finish() }
END { finish(); printf "%d %d %d\n", total, oran, oskip }
