#!/bin/sh
# The wordpress stand-in's entrypoint: writes Debian's WordPress configuration
# (/etc/wordpress/config-default.php, which /usr/share/wordpress/wp-config.php reads for
# any host name) from the variables Docker Hub's image reads, with its defaults, then runs
# the command. Keys and salts not given are random for each container, as in the Hub image.
set -eu

# VAR, else the content of the file VAR_FILE names (a Swarm secret: /run/secrets/NAME)
file_env() {
	eval "value=\${$1:-}" "file=\${$1_FILE:-}" "default=\${2:-}"
	if [ -n "$value" ] && [ -n "$file" ]; then
		echo "error: both $1 and $1_FILE are set (but are exclusive)" >&2
		exit 1
	fi
	if [ -n "$file" ]; then
		value=$(cat "$file")
	fi
	eval "$1=\${value:-\$default}"
}

# a string for PHP's single quotes (written with printf '%s': sh's echo reads backslashes as escapes)
php_string() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }

if [ "$1" = apache2-foreground ] || [ "$1" = apache2 ]; then
	file_env WORDPRESS_DB_HOST mysql
	file_env WORDPRESS_DB_USER 'example username'
	file_env WORDPRESS_DB_PASSWORD 'example password'
	file_env WORDPRESS_DB_NAME wordpress
	file_env WORDPRESS_TABLE_PREFIX wp_
	config=/etc/wordpress/config-default.php
	{
		echo "<?php"
		echo "// written by the stand-in's entrypoint from WORDPRESS_* at the container's start"
		for setting in DB_HOST DB_USER DB_PASSWORD DB_NAME; do
			eval "value=\$WORDPRESS_$setting"
			printf "define('%s', '%s');\n" "$setting" "$(php_string "$value")"
		done
		echo "define('DB_CHARSET', 'utf8');"
		echo "define('DB_COLLATE', '');"
		for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
			file_env "WORDPRESS_$key" "$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 64)"
			eval "value=\$WORDPRESS_$key"
			printf "define('%s', '%s');\n" "$key" "$(php_string "$value")"
		done
		printf "\$table_prefix = '%s';\n" "$(php_string "$WORDPRESS_TABLE_PREFIX")"
	} > "$config.new"
	chown root:www-data "$config.new"
	chmod 640 "$config.new"
	mv "$config.new" "$config"
fi
exec "$@"
