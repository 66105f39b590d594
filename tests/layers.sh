#!/bin/sh
# tests/layers.sh LIBDIR [OBJDIR]: fails when a file of liblx depends on a layer above its own.
# LIBDIR/LAYERS lists the layers lowest first with their public headers. Checked: every #include "..." of
# every file in LIBDIR/*/ and of the public headers; with OBJDIR (where the build put OBJDIR/LAYER/*.o),
# every undefined symbol of each object against the layer of the object that defines it.
set -eu
lib=$1
objdir=${2:-}
layers=$(mktemp)
trap 'rm -f "$layers"' EXIT
# rank of a layer, and of each public header: "name rank" lines
awk '!/^#/ && NF { r++; print $1, r; for (i = 2; i <= NF; i++) print $i, r }' "$lib/LAYERS" > "$layers"
rank() { awk -v k="$1" '$1 == k { print $2; exit }' "$layers"; }
bad=0
for d in "$lib"/*/; do
	d=${d%/}; d=${d##*/}
	[ -n "$(rank "$d")" ] || { echo "layers: lib/$d/ is not a layer of $lib/LAYERS"; bad=1; }
done
for h in "$lib"/lx_*.h; do
	h=${h##*/}
	[ "$h" = lx.h ] && continue
	[ -n "$(rank "$h")" ] || { echo "layers: lib/$h is in no layer of $lib/LAYERS"; bad=1; }
done
check_file() {  # file, its rank, how to name it
	own=$2
	for inc in $(sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$1"); do
		case $inc in
		*/*) r=$(rank "${inc%%/*}") ;;
		lx.h) echo "layers: $3 includes lx.h (the tools' header; include a layer's own header)"; bad=1; continue ;;
		*) r=$(rank "$inc") ;;
		esac
		if [ -z "$r" ]; then
			echo "layers: $3 includes \"$inc\", which belongs to no layer"; bad=1
		elif [ "$r" -gt "$own" ]; then
			echo "layers: $3 includes \"$inc\" from a layer above its own"; bad=1
		fi
	done
}
for f in "$lib"/*/*.[ch]; do
	d=${f#"$lib"/}; d=${d%%/*}
	r=$(rank "$d")
	[ -n "$r" ] && check_file "$f" "$r" "lib/${f#"$lib"/}"
done
for h in "$lib"/lx_*.h; do
	r=$(rank "${h##*/}")
	[ -n "$r" ] && check_file "$h" "$r" "lib/${h##*/}"
done
if [ -n "$objdir" ]; then
	# object -> layer from its folder: OBJDIR/LAYER/file.o
	nm -A "$objdir"/*/*.o | awk -v L="$layers" '
		BEGIN { while ((getline l < L) > 0) { split(l, a, " "); rk[a[1]] = a[2] } }
		{
			obj = $1; sub(/:.*/, "", obj); n2 = split(obj, p, "/"); lay = p[n2 - 1]; obj = lay "/" p[n2]
			if ($2 ~ /^[TDBRCV]$/ && NF == 3) def[$3] = lay
			else if ($2 == "U" && NF == 3) { n++; uo[n] = obj; ul[n] = lay; us[n] = $3 }
		}
		END {
			for (i = 1; i <= n; i++) if ((us[i] in def) && rk[def[us[i]]] > rk[ul[i]]) {
				printf "layers: %s (%s) uses %s from layer %s above it\n", uo[i], ul[i], us[i], def[us[i]]; bad = 1
			}
			exit bad
		}' || bad=1
fi
[ "$bad" = 0 ] && echo "layers: every file of liblx depends only on its own layer and those below"
exit "$bad"
