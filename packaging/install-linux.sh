#!/usr/bin/env bash
# Puts Nightschool in the desktop's application menu: a .desktop entry and the icon, for this user.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -x "$root/.venv/bin/nightschool" ] || bash "$root/scripts/setup.sh"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$root/assets/icon.svg" "$icons/nightschool.svg"
sed "s|@EXEC@|$root/.venv/bin/nightschool|" "$root/packaging/nightschool.desktop" > "$apps/nightschool.desktop"
command -v desktop-file-validate >/dev/null && desktop-file-validate "$apps/nightschool.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" || true
echo "Installed: $apps/nightschool.desktop"
