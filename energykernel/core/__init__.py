"""The measuring core: windows, the engine and its sampler, the run record, the log.

Pure Python with no notebook, widget, plotting or Dataset library imported: ``window``
(``ek.measure``, ``@ek.track``), ``engine`` (backends, sampler, timeline), ``record``
(``RunRecord``, ``Measurement``), ``accounting`` (device readings → component energy),
``recorder`` (in memory + JSON-lines log), ``config``, ``units``, ``api``.
"""
