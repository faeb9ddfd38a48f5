"""What the API does, apart from HTTP: the routers (api/routers/) parse a request, call a
service here, and shape its answer; a service never imports a router."""
