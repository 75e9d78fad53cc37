"""The pure parts of watch mode, each testable without threads, watchdog or a clock:

- :mod:`.paths`: which names are temporary or hidden, which files are (or try to be) manifests;
- :mod:`.folder`: what the watcher knows about its folder: the manifests that load, those that
  do not (and why), the dependency map (which files feed which manifests), the outputs each
  manifest wants, which paths to ignore, and what a batch of changed paths means;
- :mod:`.debounce`: paths that arrive close together become one batch, once things are quiet.

:mod:`vidbatch.watch` wires them to watchdog, a queue and a :class:`~vidbatch.session.Session`.
"""
