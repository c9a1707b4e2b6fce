#!/bin/sh
# As Docker Hub's registry:2: a configuration file alone means `registry serve FILE`.
set -e
case "$1" in
	*.yaml|*.yml) set -- registry serve "$@" ;;
	serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
