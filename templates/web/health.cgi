#!/bin/sh
# Healthy until the container is asked to stop (see /bin/serve): then 503, so that load
# balancers stop sending it requests before it goes away.
if [ -e /draining ]; then
	printf 'HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\ndraining\n'
	exit 0
fi
printf 'Content-Type: text/plain\r\n\r\nok\n'
