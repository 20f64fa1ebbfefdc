"""The native media port (``sip.media_port: native``): a pjmedia port in C and its Python pump.

``port.c`` is the port, ``build.py`` compiles it, ``lib.py`` binds it with ctypes, ``layout.py``
checks its pjmedia declarations against the running library, ``pool.py`` attaches ports to
calls and ``pump.py`` moves their audio once per tick. It is the default port; nothing here is
imported with ``sip.media_port: python`` (the pjsua2 fallback, which needs no C compiler).
"""
