"""The native media port (``sip.media_port: native``): a pjmedia port in C and its Python pump.

``port.c`` is the port, ``build.py`` compiles it, ``lib.py`` binds it with ctypes, ``layout.py``
checks its pjmedia declarations against the running library, ``pool.py`` attaches ports to
calls and ``pump.py`` moves their audio once per tick. Nothing here is imported unless the key
asks for it, so a machine without a C compiler still runs the default (``python``) port.
"""
