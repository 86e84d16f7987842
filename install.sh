#!/usr/bin/env bash
# Installs everything the pipeline and its tests need on a fresh Debian/Ubuntu machine (or in CI):
# TeX Live + latexmk (PDF), poppler-utils (pdftotext, for tests), Chromium + chromedriver (HTML test),
# then the exact Python pins from requirements.txt and this project's library (qrepro, editable) into the active
# Python environment.
# Set SKIP_APT=1 to skip the system packages (e.g. inside conda, where environment.yml covers TeX).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended
              poppler-utils lmodern chromium chromium-driver)

if [ "${SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps --no-build-isolation -e .
