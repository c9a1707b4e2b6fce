#!/bin/sh
# As Docker Hub's nginx image: prepare, then run the command (nginx by default).
set -eu
if [ "$1" = nginx ]; then
	stand-in-page /usr/share/nginx/html/index.html /usr/local/share/stand-in/index.html
fi
exec "$@"
