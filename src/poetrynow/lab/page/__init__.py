"""The lab's page: plain HTML, CSS and one small script, shipped in the package (no CDN, no build)."""
