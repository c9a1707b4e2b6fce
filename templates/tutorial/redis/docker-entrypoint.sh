#!/bin/sh
# As Docker Hub's redis image: options alone (`--appendonly yes`) or a .conf file mean
# redis-server with them; the server runs as user redis and owns /data. (Protected mode is
# off, as in the Hub image: /usr/local/bin/redis-server sees to it.)
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . ! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
