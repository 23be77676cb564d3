"""The fast poetry server (Parts 15-16): ``plain`` is the lesson (the whole poem, then close),
``onewrite`` its fast edition (most connections answered in one write, on the reactor), which
the proxy's cache hits use too."""
