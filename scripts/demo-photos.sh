#!/usr/bin/env bash
# Gathers a small demo training set for `stylize train --data DIR`: 78 natural photographs that
# Debian 12 packages ship (docs/demo-photos.md lists them, with their licences). Nothing is
# installed: each package is fetched with `apt-get download`, only the photos and its copyright
# file are unpacked, and the original JPEG/PNG bytes are copied unchanged.
#   scripts/demo-photos.sh [DIR]   default ${XDG_DATA_HOME:-$HOME/.local/share}/stylize/demo-photos
# Writes DIR/<package>-<name>, DIR/SOURCES.txt (file, package, version, licence, credit, path in
# the package) and DIR/licenses/<package>.copyright. Rerunning skips photos already there.
# Downloads about 340 MB from the Debian archive (one package at a time; each .deb is deleted
# once unpacked). For real training use COCO instead (docs/demo-photos.md).
set -euo pipefail

me=demo-photos
die() { echo "error: $*" >&2; exit 1; }
note() { echo "$me: $*" >&2; }

[ $# -le 1 ] || die "usage: scripts/demo-photos.sh [DIR]"
dir=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/stylize/demo-photos}
{ command -v apt-get && command -v dpkg-deb; } >/dev/null || die "needs apt-get and dpkg-deb (Debian)"

# The photos must live outside the repository (they are not ours to commit).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || echo "$here")
repo=$(realpath -m "$repo")
dir=$(realpath -m "$dir")
case "$dir/" in
  "$repo"/*) die "$dir is inside the repository $repo; give a folder outside it" ;;
esac
[ ! -e "$dir" ] || [ -d "$dir" ] || die "$dir exists and is not a folder"

# package | path in the .deb | name after "<package>-" | licence | credit.
# Curated by hand from Debian 12: every image was looked at, and drawings, renders, test patterns,
# text, masks, greyscale-only or scientific images, stereo/near duplicates, images whose shorter
# side is under 320 px, and a press photo (opencv-doc's messi5.jpg) were left out. Licences are
# from each package's usr/share/doc/PKG/copyright (per file where it has a stanza for the file),
# or from the licence file shipped next to the images where the package has one.
manifest=$(cat <<'EOF'
opencv-doc | usr/share/doc/opencv-doc/examples/alphamat/input_images/plant.jpg | plant.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/aero1.jpg | aero1.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/aero3.jpg | aero3.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/aloeL.jpg | aloeL.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples (Middlebury stereo)
opencv-doc | usr/share/doc/opencv-doc/examples/data/apple.jpg | apple.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/baboon.jpg | baboon.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples (USC-SIPI mandrill)
opencv-doc | usr/share/doc/opencv-doc/examples/data/board.jpg | board.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/building.jpg | building.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/butterfly.jpg | butterfly.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/chicky_512.png | chicky_512.png | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/ela_original.jpg | ela_original.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/fruits.jpg | fruits.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/home.jpg | home.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/left.jpg | left.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/leuvenA.jpg | leuvenA.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/orange.jpg | orange.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/rubberwhale1.png | rubberwhale1.png | Apache-2.0 AND BSD-3-Clause | OpenCV samples (Middlebury optical flow)
opencv-doc | usr/share/doc/opencv-doc/examples/data/smarties.png | smarties.png | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/squirrel_cls.jpg | squirrel_cls.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
opencv-doc | usr/share/doc/opencv-doc/examples/data/stuff.jpg | stuff.jpg | Apache-2.0 AND BSD-3-Clause | OpenCV samples
python3-skimage | usr/lib/python3/dist-packages/skimage/data/astronaut.png | astronaut.png | public domain (NASA; package: BSD-3-Clause) | NASA, Eileen Collins
python3-skimage | usr/lib/python3/dist-packages/skimage/data/coffee.png | coffee.png | CC0 (package: BSD-3-Clause) | Rachel Michetti, Pikolo Espresso Bar
python3-skimage | usr/lib/python3/dist-packages/skimage/data/rocket.jpg | rocket.jpg | public domain (SpaceX; package: BSD-3-Clause) | SpaceX, DSCOVR launch
python3-skimage | usr/lib/python3/dist-packages/skimage/data/motorcycle_left.png | motorcycle_left.png | BSD-3-Clause | Middlebury 2014 stereo (Scharstein et al.)
python-matplotlib-data | usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg | grace_hopper.jpg | Matplotlib licence (PSF-based) | US Navy portrait of Grace Hopper
mate-backgrounds | usr/share/backgrounds/mate/nature/Aqua.jpg | Aqua.jpg | GPL-2+ | 2008 Charles Barbin
mate-backgrounds | usr/share/backgrounds/mate/nature/Blinds.jpg | Blinds.jpg | GPL-2+ | 2008 Lennart Poettering, Andrea Cimitan
mate-backgrounds | usr/share/backgrounds/mate/nature/Dune.jpg | Dune.jpg | GPL-2+ | 2007 Marco Cogoni, 2008 Hylke Bons
mate-backgrounds | usr/share/backgrounds/mate/nature/FreshFlower.jpg | FreshFlower.jpg | GPL-2+ | 2005 Jens Ansorg
mate-backgrounds | usr/share/backgrounds/mate/nature/Garden.jpg | Garden.jpg | GPL-2+ | 2008 Charles Barbin
mate-backgrounds | usr/share/backgrounds/mate/nature/GreenMeadow.jpg | GreenMeadow.jpg | GPL-2+ | 2005 Timothy Schellhase, 2008 Lapo Calamandrei
mate-backgrounds | usr/share/backgrounds/mate/nature/LadyBird.jpg | LadyBird.jpg | GPL-2+ | 2008 Charles Barbin
mate-backgrounds | usr/share/backgrounds/mate/nature/RainDrops.jpg | RainDrops.jpg | GPL-2+ | 2008 "blackcombwhistler07"
mate-backgrounds | usr/share/backgrounds/mate/nature/Storm.jpg | Storm.jpg | GPL-2+ | 2008 Sergey Nazarov
mate-backgrounds | usr/share/backgrounds/mate/nature/TwoWings.jpg | TwoWings.jpg | GPL-2+ | 2008 Charles Barbin, Hylke Bons
mate-backgrounds | usr/share/backgrounds/mate/nature/Wood.jpg | Wood.jpg | GPL-2+ | 2008 Jean-François Fortin Tam
mate-backgrounds | usr/share/backgrounds/mate/nature/YellowFlower.jpg | YellowFlower.jpg | GPL-2+ | 2008 Charles Barbin
plasma-workspace-wallpapers | usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg | BytheWater.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Maciej Wiklo
plasma-workspace-wallpapers | usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg | ColdRipple.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
plasma-workspace-wallpapers | usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg | ColorfulCups.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Dmitri Popov
plasma-workspace-wallpapers | usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg | DarkestHour.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
plasma-workspace-wallpapers | usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg | EveningGlow.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Ian Hex
plasma-workspace-wallpapers | usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg | FallenLeaf.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Martin Klapetek
plasma-workspace-wallpapers | usr/share/wallpapers/Kite/contents/images/2560x1600.jpg | Kite.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
plasma-workspace-wallpapers | usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg | OneStandsOut.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
plasma-workspace-wallpapers | usr/share/wallpapers/Path/contents/images/2560x1600.jpg | Path.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
plasma-workspace-wallpapers | usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg | summer_1am.jpg | LGPL-3 (metadata.json; debian/copyright: GPL-2+) | Risto Saukonpää
lomiri-wallpapers-16.04 | usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg | Bridge_by_Sander_Klootwijk.jpg | CC-BY-SA-4.0 | 2018 Sander Klootwijk
lomiri-wallpapers-16.04 | usr/share/backgrounds/Dragonfly_by_Bolly.jpg | Dragonfly_by_Bolly.jpg | CC-BY-SA-4.0 | 2018 "Bolly"
lomiri-wallpapers-16.04 | usr/share/backgrounds/Picture_0B_by_freespace.jpg | Picture_0B_by_freespace.jpg | CC-BY-4.0 | 2018 Trevor "Freespace"
lomiri-wallpapers-16.04 | usr/share/backgrounds/Picture_1A_by_freespace.jpg | Picture_1A_by_freespace.jpg | CC-BY-4.0 | 2018 Trevor "Freespace"
lomiri-wallpapers-16.04 | usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg | Wine_by_Jakkub_Mede.jpg | CC-BY-4.0 | 2018 Jakub Mede
lomiri-wallpapers-16.04 | usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg | aitzgorri_by_Aitzol_Berasategi.jpg | CC-BY-4.0 | 2018 Aitzol Berasategi
lomiri-wallpapers-16.04 | usr/share/backgrounds/free_by_Peter_Nerlich.jpg | free_by_Peter_Nerlich.jpg | CC-BY-SA-4.0 | 2018 Peter Nerlich
lomiri-wallpapers-16.04 | usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg | friends_by_Aitzol_Berasategi.jpg | CC-BY-4.0 | 2018 Aitzol Berasategi
lomiri-wallpapers-16.04 | usr/share/backgrounds/greentock_by_Peter_Nerlich.jpg | greentock_by_Peter_Nerlich.jpg | CC-BY-SA-4.0 | 2018 Peter Nerlich
lomiri-wallpapers-16.04 | usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg | life_by_Aitzol_Berasategi.jpg | CC-BY-4.0 | 2018 Aitzol Berasategi
lomiri-wallpapers-16.04 | usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg | picosdeeuropa_by_Aitzol_Berasategi.jpg | CC-BY-4.0 | 2018 Aitzol Berasategi
lomiri-wallpapers-16.04 | usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg | seeding_by_Clements_Engelhardt.jpg | CC0-1.0 | 2018 Clemens Engelhardt
lomiri-wallpapers-16.04 | usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg | sunset_by_Aitzol_Berasategi.jpg | CC-BY-4.0 | 2018 Aitzol Berasategi
lomiri-wallpapers-20.04 | usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg | Kleiber_by_Lukas_Baubkus.jpg | CC-BY-SA-3.0 | 2021 Lukas Baubkus
lxqt-themes | usr/share/lxqt/wallpapers/Valendas.png | Valendas.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/after-the-rain.jpg | after-the-rain.jpg | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/appleflower.png | appleflower.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/beam.png | beam.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/butterfly.png | butterfly.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/cloud.png | cloud.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/drop.png | drop.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/flowers.png | flowers.png | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/fog.jpg | fog.jpg | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/this-is-not-windows.jpg | this-is-not-windows.jpg | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | stefonarch, LXQt Project Team
lxqt-themes | usr/share/lxqt/wallpapers/Butterfly-Kenneth-Wimer.jpg | Butterfly-Kenneth-Wimer.jpg | CC-BY-SA-3.0 (wallpapers/License; debian/copyright: LGPL-2.1+) | Kenneth Wimer, LXQt Project Team
forensics-samples-files | usr/share/forensics-samples/original-files/pic1/IMG-20191006-WA0002.jpg | IMG-20191006-WA0002.jpg | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
forensics-samples-files | usr/share/forensics-samples/original-files/pic1/IMG_1054.JPG | IMG_1054.JPG | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
forensics-samples-files | usr/share/forensics-samples/original-files/pic1/IMG_20200827_231612.jpg | IMG_20200827_231612.jpg | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
forensics-samples-files | usr/share/forensics-samples/original-files/pic2/IMG_20191224_234846.jpg | IMG_20191224_234846.jpg | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
forensics-samples-files | usr/share/forensics-samples/original-files/pic2/IMG_20200124_231153.jpg | IMG_20200124_231153.jpg | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
forensics-samples-files | usr/share/forensics-samples/original-files/pic2/IMG_20200608_111614.jpg | IMG_20200608_111614.jpg | CC-BY-SA-4.0 | 2019-2020 Joao Eriberto Mota Filho
EOF
)

# The versions whose images and licences were checked (a newer one still works; the note asks to
# look at its copyright file, which is saved in DIR/licenses/).
declare -A checked=(
  [opencv-doc]=4.6.0+dfsg-12 [python3-skimage]=0.19.3-8 [python-matplotlib-data]=3.6.3-1
  [mate-backgrounds]=1.26.0-1 [plasma-workspace-wallpapers]=4:5.27.5-2
  [lomiri-wallpapers-16.04]=20.04.0-2 [lomiri-wallpapers-20.04]=20.04.0-2
  [lxqt-themes]=1.2.0-1 [forensics-samples-files]=1.1.4-5
)
# Files that say more about the photos' licence than debian/copyright does.
declare -A extra_licence=(
  [lxqt-themes]=usr/share/lxqt/wallpapers/License
)

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

packages=() ; declare -A seen_pkg=()
declare -A m_pkg=() m_member=() m_lic=() m_credit=()
names=()
while IFS='|' read -r p member name lic credit; do
  p=$(trim "$p"); name="$p-$(trim "$name")"
  [ -n "${seen_pkg[$p]:-}" ] || { packages+=("$p"); seen_pkg[$p]=1; }
  names+=("$name")
  m_pkg[$name]=$p; m_member[$name]=$(trim "$member"); m_lic[$name]=$(trim "$lic"); m_credit[$name]=$(trim "$credit")
done <<<"$manifest"

mkdir -p "$dir/licenses"
sources=$dir/SOURCES.txt

# Lines of an earlier run, for photos that are already there (so a rerun downloads nothing).
declare -A old_line=()
if [ -f "$sources" ]; then
  while IFS= read -r line; do
    case "$line" in '#'* | '') continue ;; esac
    old_line[${line%%$'\t'*}]=$line
  done <"$sources"
fi

declare -A hash_of=()  # sha256 -> file name, to refuse duplicates
for name in "${names[@]}"; do
  [ -f "$dir/$name" ] || continue
  hash_of[$(sha256sum "$dir/$name" | cut -d' ' -f1)]=$name
done

is_image() {  # JPEG or PNG by their first bytes
  local magic
  magic=$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')
  case "$magic" in ffd8ff* | 89504e47) return 0 ;; *) return 1 ;; esac
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stylize-demo-photos.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_opts=(-q)
# As root, apt drops to the _apt user to download, which cannot write into our private temp folder.
[ "$(id -u)" != 0 ] || apt_opts+=(-o APT::Sandbox::User=root)
updated=0
apt_update() {
  note "refreshing the package lists (apt-get update)"
  if [ "$(id -u)" = 0 ]; then
    apt-get -qq update
  elif command -v sudo >/dev/null; then
    sudo apt-get -qq update
  else
    note "cannot run apt-get update: not root and no sudo"
    return 1
  fi
}
deb=""
download() {  # download PKG into $tmp/deb and set $deb (not in a subshell: $updated must stick)
  local p=$1 log=$tmp/apt.log
  rm -rf "$tmp/deb" && mkdir -p "$tmp/deb"
  if ! (cd "$tmp/deb" && apt-get "${apt_opts[@]}" download "$p") >"$log" 2>&1; then
    # Missing or stale lists: "Unable to locate package", "no installation candidate", 404s.
    if [ "$updated" = 0 ]; then
      updated=1
      apt_update || true
      (cd "$tmp/deb" && apt-get "${apt_opts[@]}" download "$p") >"$log" 2>&1 || { sed 's/^/  /' "$log" >&2; return 1; }
    else
      sed 's/^/  /' "$log" >&2
      return 1
    fi
  fi
  deb=$(ls "$tmp/deb"/*.deb)
}

declare -A version=()
for p in "${packages[@]}"; do
  want=()
  for name in "${names[@]}"; do
    [ "${m_pkg[$name]}" = "$p" ] || continue
    if [ ! -f "$dir/$name" ] || [ -z "${old_line[$name]:-}" ] || [ ! -f "$dir/licenses/$p.copyright" ]; then
      want+=("$name")
    fi
  done
  [ ${#want[@]} -gt 0 ] || continue
  note "fetching $p (${#want[@]} photo(s))"
  if ! download "$p"; then
    note "skipping $p: apt-get download failed"
    continue
  fi
  v=$(dpkg-deb -f "$deb" Version)
  version[$p]=$v
  if [ -n "${checked[$p]:-}" ] && [ "${checked[$p]}" != "$v" ]; then
    note "$p is $v here, the licences were checked for ${checked[$p]}: see $dir/licenses/$p.copyright"
  fi
  members=("./usr/share/doc/$p/copyright")
  [ -z "${extra_licence[$p]:-}" ] || members+=("./${extra_licence[$p]}")
  for name in "${want[@]}"; do members+=("./${m_member[$name]}"); done
  rm -rf "$tmp/x" && mkdir -p "$tmp/x"
  # tar exits non-zero when a member is missing (another version); each file is checked below.
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" "${members[@]}" 2>"$tmp/tar.log" || true
  rm -f "$deb"
  if [ -f "$tmp/x/usr/share/doc/$p/copyright" ]; then
    cp "$tmp/x/usr/share/doc/$p/copyright" "$dir/licenses/$p.copyright"
  fi
  if [ -n "${extra_licence[$p]:-}" ] && [ -f "$tmp/x/${extra_licence[$p]}" ]; then
    cp "$tmp/x/${extra_licence[$p]}" "$dir/licenses/$p.$(basename "${extra_licence[$p]}")"
  fi
  for name in "${want[@]}"; do
    src=$tmp/x/${m_member[$name]}
    if [ ! -f "$dir/$name" ]; then
      if [ -L "$src" ] || [ ! -s "$src" ]; then
        note "skipping $name: ${m_member[$name]} is not in $p $v"
        continue
      fi
      if ! is_image "$src"; then
        note "skipping $name: not a JPEG or PNG file"
        continue
      fi
      h=$(sha256sum "$src" | cut -d' ' -f1)
      if [ -n "${hash_of[$h]:-}" ]; then
        note "skipping $name: the same bytes as ${hash_of[$h]}"
        continue
      fi
      cp "$src" "$dir/.$name.part"
      mv "$dir/.$name.part" "$dir/$name"
      hash_of[$h]=$name
      unset "old_line[$name]"  # written below with this download's version
    fi
  done
done

# SOURCES.txt: one line per photo present, tab-separated.
count=0
{
  printf '# Demo training photos gathered by scripts/demo-photos.sh from Debian packages (not installed).\n'
  printf '# Full licence texts: licenses/<package>.copyright (and licenses/lxqt-themes.License).\n'
  printf '# file\tpackage\tversion\tlicence\tcredit\tpath in the package\n'
  for name in "${names[@]}"; do
    [ -f "$dir/$name" ] || continue
    if [ -n "${old_line[$name]:-}" ]; then
      printf '%s\n' "${old_line[$name]}"
    else
      p=${m_pkg[$name]}
      printf '%s\t%s\t%s\t%s\t%s\t/%s\n' "$name" "$p" "${version[$p]:-${checked[$p]:-unknown}}" \
        "${m_lic[$name]}" "${m_credit[$name]}" "${m_member[$name]}"
    fi
    count=$((count + 1))
  done
} >"$tmp/SOURCES.txt"
mv "$tmp/SOURCES.txt" "$sources"

[ "$count" -gt 0 ] || die "no photos could be gathered into $dir: apt-get download failed (see above; it needs the Debian archive and package lists: 'apt-get update' as root)"
size=$(for name in "${names[@]}"; do [ ! -f "$dir/$name" ] || printf '%s\0' "$dir/$name"; done | du -ch --files0-from=- | tail -1 | cut -f1)
echo "$me: $count photos ($size) in $dir; sources and licences in $dir/SOURCES.txt"
if [ "$count" -lt "${#names[@]}" ]; then
  note "$(( ${#names[@]} - count )) of the ${#names[@]} listed photos are missing (see above); rerun to retry"
fi
echo "$me: train with: stylize train --style STYLE.jpg --data $dir -o FILTER.safetensors"
