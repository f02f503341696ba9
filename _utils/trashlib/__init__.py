"""Pure library of the trash cluster formula: pillar model, validation and renderers.

Nothing here runs commands or touches the system; the execution modules in
``_modules/`` do that and call into this package.
"""
