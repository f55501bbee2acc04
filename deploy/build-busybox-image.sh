#!/bin/sh
# Builds the image `navarch/busybox:latest` (also tagged `busybox:latest`) from Debian's busybox-static, without a
# registry: a root filesystem holding /bin/busybox and its applet links, loaded with `docker import`. The Docker
# runtime's pod sandboxes and its tests run it. Idempotent: an existing image built from the same busybox binary is
# kept.
set -eu

IMAGE=${IMAGE:-navarch/busybox:latest}
BUSYBOX=${BUSYBOX:-/bin/busybox}

if [ ! -x "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1; then
    echo "build-busybox-image: $BUSYBOX is missing; install Debian's busybox-static (apt-get install busybox-static)" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build-busybox-image: $BUSYBOX is dynamically linked; install busybox-static, not busybox" >&2
    exit 1
fi
command -v docker >/dev/null || { echo "build-busybox-image: docker is not installed" >&2; exit 1; }

# The image records the binary it came from, so a rebuild is skipped unless busybox changed.
sum=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
current=$(docker image inspect --format '{{index .Config.Labels "io.navarch.busybox-sha256"}}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$sum" ]; then
    docker tag "$IMAGE" busybox:latest
    echo "$IMAGE is up to date"
    exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root" "$root/var/www"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> "$root/etc/passwd"

tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' \
    --change "LABEL io.navarch.busybox-sha256=$sum" \
    - "$IMAGE" >/dev/null
docker tag "$IMAGE" busybox:latest
echo "built $IMAGE from $BUSYBOX"
