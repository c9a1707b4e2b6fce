#!/bin/sh
# As Docker Hub's redis image: options alone (`--appendonly yes`) or a .conf file mean
# redis-server with them; the server runs as user redis and owns /data. Redis's protected
# mode (clients from other addresses refused while no password is set) is turned off, as
# the Hub image does when it is built: a container's clients always come from elsewhere.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
	case " $* " in
		*" --protected-mode "*) ;;
		*) set -- "$@" --protected-mode no ;;
	esac
	if [ "$(id -u)" = 0 ]; then
		find . ! -user redis -exec chown redis '{}' +
		exec setpriv --reuid=redis --regid=redis --init-groups "$@"
	fi
fi
exec "$@"
