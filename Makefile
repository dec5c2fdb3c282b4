# Two entry points: `make run` (pipeline on the embedded synthetic default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export DVC_NO_ANALYTICS=1
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
export PREFECT_SERVER_ANALYTICS_ENABLED=false

.PHONY: run test install ui edit study
UI_PORT ?= 5000
EDIT_PORT ?= 8050

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

run: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH dvc repro

test: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q

# MLflow UI on http://127.0.0.1:$(UI_PORT), light (one worker, no job runner); prints the link to the runs
ui: install
	$(PY) -m fashion_edit.serving.cli ui --port $(UI_PORT)

# The editing page on http://127.0.0.1:$(EDIT_PORT) over models:/editor@champion (MODEL_ARGS="--checkpoint artifacts/editor")
edit: install
	$(PY) -m fashion_edit.serving.cli serve --port $(EDIT_PORT) $(MODEL_ARGS)

# The ablation study (issue 17): every variant, 3 seeds, 3 points of each learning curve, as one DVC
# experiment (`dvc exp show` lists it); finished variants are cached, a killed one resumes.
STUDY_VARIANTS := full,one_stage,no_attention,no_spectral_norm,no_gan,spade_norm,instance_norm,gated_conv,plain_conv,no_sketch_colour,no_prefill,fegan_encoder_mask,stochastic
study: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH dvc exp run -n study -S 'ablation.variants=[$(STUDY_VARIANTS)]' \
		-S ablation.seeds=3 -S ablation.curve_points=3
