"""mitmproxy addon for the benchmark: every name under example.test
connects to 127.0.0.1 (the local nginx), the way btrfly's
[upstream.resolve] and the load client's --resolve map them. The TLS
server name stays the original host, so the upstream certificate is
verified against it.
"""

SUFFIX = ".example.test"
ADDRESS = "127.0.0.1"


class Resolve:
    def server_connect(self, data):
        server = data.server
        if not server.address:
            return
        host, port = server.address
        if host == SUFFIX[1:] or host.endswith(SUFFIX):
            if not server.sni:
                server.sni = host
            server.address = (ADDRESS, port)


addons = [Resolve()]
