"""The README's first command runs this file inside a `local` sandbox."""

import os
import platform
import socket

print("Hello from a Sandstorm sandbox!")
print(f"python {platform.python_version()} running as uid {os.getuid()}, pid {os.getpid()}")
print(f"hostname: {socket.gethostname()}")
print(f"environment variables visible: {sorted(os.environ)}")
print(f"network interfaces: {[name for _, name in socket.if_nameindex()]}")
print(f"processes visible: {sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}")
