"""The machinery behind the tutorial's chapter scripts: data, the run and its safety, the flags' extensions of
a chapter's model, training, evaluation, figures, saving. Importing it does nothing else: a chapter's first
call, vae.start.start, checks the platform and turns Ctrl-C into one line."""
