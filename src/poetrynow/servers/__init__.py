"""The poetry servers of the articles, one room each: ``slow`` (blocking, Twisted, and its fast
edition), ``fast``, ``proxy``, ``transform`` (with the machinery its work runs on), what they
share in ``common``, and ``deploy``, the service trees the commands and twistd both run."""
