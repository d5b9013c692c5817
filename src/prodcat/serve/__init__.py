"""prodcat.serve: the REST API and the web demonstrator over a saved model bundle.

- :mod:`~prodcat.serve.api`: ``create_app(model)`` (FastAPI) and ``run_server(model_dir)`` (uvicorn);
- :mod:`~prodcat.serve.launch`: ``run_webapp(model_dir)`` starts the Streamlit demonstrator
  (:mod:`~prodcat.serve.webapp`, with its data helpers in :mod:`~prodcat.serve.webdata`);
- :mod:`~prodcat.serve.service`: the framework-free logic both share (checks, one vectorised
  prediction per batch, answers with names and per-component probabilities);
- :mod:`~prodcat.serve.schemas`, :mod:`~prodcat.serve.uploads`, :mod:`~prodcat.serve.limits`:
  request/response models, in-memory photo checks, request body cap.

Nothing is imported here, so ``import prodcat.serve`` does not load FastAPI or Streamlit.
"""
