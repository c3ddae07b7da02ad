#!/usr/bin/env bash
# Install the system packages the tests and the demo use, where apt is available and we are root:
# Debian's Fashion-MNIST files, Chromium (the report's browser test) and graphviz (plot_model).
# Without apt or root it only says what is missing; the tests that need a package then skip with a reason.
set -u
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
    || echo "warning: apt could not install ${need[*]}"
else
  echo "note: not installing ${need[*]} (needs apt and root); dependent tests will skip with a reason"
fi
exit 0
