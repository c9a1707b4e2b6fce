#!/bin/sh
# The mysql stand-in's entrypoint, as Docker Hub's mysql image behaves: on the first start
# (no /var/lib/mysql/mysql yet) the data directory is made and set up from MYSQL_* with a
# server that listens on no network, which then stops; every start runs the server as user
# mysql. Options alone (`--character-set-server=utf8mb4`) mean mysqld with them.
set -eu
if [ "${1#-}" != "$1" ]; then
	set -- mysqld "$@"
fi
case "$1" in
	mysqld|mariadbd) ;;
	*) exec "$@" ;;
esac

DATADIR=/var/lib/mysql
if [ "$(id -u)" = 0 ]; then
	find "$DATADIR" /run/mysqld ! -user mysql -exec chown mysql:mysql '{}' +
	exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi

note() { echo "[stand-in entrypoint] $*"; }

# VAR, else the content of the file VAR_FILE names (a Swarm secret: /run/secrets/NAME)
file_env() {
	eval "value=\${$1:-}" "file=\${$1_FILE:-}"
	if [ -n "$value" ] && [ -n "$file" ]; then
		echo "error: both $1 and $1_FILE are set (but are exclusive)" >&2
		exit 1
	fi
	if [ -n "$file" ]; then
		value=$(cat "$file")
	fi
	eval "$1=\$value"
}

# a string for SQL's single quotes, and a name for its backquotes; what holds them is written
# with printf '%s', never echo, whose sh (dash) reads backslashes as escapes
sql_string() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
sql_name() { printf '%s' "$1" | sed -e 's/`/``/g'; }

initialise() {
	for var in MYSQL_ROOT_PASSWORD MYSQL_DATABASE MYSQL_USER MYSQL_PASSWORD; do
		file_env "$var"
	done
	: "${MYSQL_ALLOW_EMPTY_PASSWORD:=}" "${MYSQL_RANDOM_ROOT_PASSWORD:=}" "${MYSQL_ROOT_HOST:=%}"
	if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ] && [ -z "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
		echo "error: database is uninitialized and password option is not specified" >&2
		echo "  You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD" >&2
		exit 1
	fi
	if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
		MYSQL_ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32)
		note "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
	fi

	note "initialising the database in $DATADIR (MariaDB standing in for MySQL)"
	mariadb-install-db --datadir="$DATADIR" --skip-test-db --skip-name-resolve \
		--auth-root-authentication-method=normal > /dev/null
	socket=/run/mysqld/initialise.sock
	"$@" --skip-networking --socket="$socket" &
	server=$!
	tries=0
	until mariadb --socket="$socket" -uroot -e 'SELECT 1' > /dev/null 2>&1; do
		tries=$((tries + 1))
		if [ "$tries" -gt 300 ] || ! kill -0 "$server" 2>/dev/null; then
			echo "error: the server did not start to initialise the database" >&2
			exit 1
		fi
		sleep 0.1
	done
	sql() { mariadb --socket="$socket" -uroot "$@"; }

	root_password=$(sql_string "$MYSQL_ROOT_PASSWORD")
	root_host=$(sql_string "$MYSQL_ROOT_HOST")
	{
		# mariadb-install-db also makes anonymous accounts and password-less root ones for
		# 127.0.0.1, ::1 and the container's name; Docker Hub's image has root@localhost alone
		echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host != 'localhost');"
		echo "DELETE FROM mysql.proxies_priv WHERE Host != 'localhost';"
		if [ "$MYSQL_ROOT_HOST" != localhost ]; then
			printf "CREATE USER 'root'@'%s' IDENTIFIED BY '%s';\n" "$root_host" "$root_password"
			printf "GRANT ALL ON *.* TO 'root'@'%s' WITH GRANT OPTION;\n" "$root_host"
		fi
		if [ -n "$MYSQL_DATABASE" ]; then
			printf 'CREATE DATABASE IF NOT EXISTS `%s`;\n' "$(sql_name "$MYSQL_DATABASE")"
		fi
		if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
			printf "CREATE USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$(sql_string "$MYSQL_USER")" "$(sql_string "$MYSQL_PASSWORD")"
			if [ -n "$MYSQL_DATABASE" ]; then
				printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" "$(sql_name "$MYSQL_DATABASE")" "$(sql_string "$MYSQL_USER")"
			fi
		fi
		echo "FLUSH PRIVILEGES;"
	} | sql

	for script in /docker-entrypoint-initdb.d/*; do
		case "$script" in
			*.sh) note "running $script"; . "$script" ;;
			*.sql) note "running $script"; sql ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} < "$script" ;;
			*.sql.gz) note "running $script"; gunzip -c "$script" | sql ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} ;;
		esac
	done

	# last, in the same session: the root password, then the temporary server stops
	printf "ALTER USER 'root'@'localhost' IDENTIFIED BY '%s';\nSHUTDOWN;\n" "$root_password" | sql
	wait "$server" || true
	note "the database is set up; starting the server"
}

if [ ! -d "$DATADIR/mysql" ]; then
	initialise "$@"
fi
exec "$@"
