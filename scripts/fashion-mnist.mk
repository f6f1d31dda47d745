# Fashion-MNIST with augmentation: data -> statistics -> a CNN with batch norm and dropout
# (2 conv + 3 dense) trained on `augment --repeat` output streamed into `fit --stream` -> test
# predictions scored against a gate -> a report. Copy this file anywhere and run
#
#     make -f fashion-mnist.mk              # or make -j2 -f fashion-mnist.mk
#     make -f fashion-mnist.mk EPOCHS=30 AUGMENT='--hflip 0.5 --shift 3 --rotate 10'
#     make -f fashion-mnist.mk NORM='--standardize --per-channel'
#
# with the tools on PATH. Only what changed is redone: the model depends on the training data
# and on the variables that shape it (recorded in model.params), so a second `make` does
# nothing and a new EPOCHS retrains without reloading the data; `make -n` and `make -q` with
# other variables change nothing (-q exits 1: there is work to do). A failed gate fails `make`
# and leaves its scores in score-failed.json beside report.html, but no score.json.

D       ?= /usr/share/datasets/fashion-mnist
EPOCHS  ?= 25
EPOCH_SIZE ?= 60000
BATCH   ?= 128
LR      ?= 0.001
DECAY   ?= 0.9
SEED    ?= 1
THREADS ?= $(shell n=$$(nproc); [ $$n -le 256 ] || n=256; echo $$n)
NORM    ?= --scale 255
AUGMENT ?= --hflip 0.5 --shift 2
GATE    ?= accuracy>=0.93
ARCH    ?= conv 32 3x3 padding=same; batchnorm; relu; maxpool 2; \
           conv 64 3x3 padding=same; batchnorm; relu; maxpool 2; dropout 0.1; flatten; \
           dense 256; batchnorm; relu; dropout 0.3; dense 128 relu; dropout 0.2; dense classes
CLASSES  = T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot

SHELL = /bin/bash
.SHELLFLAGS = -o pipefail -ec
.DELETE_ON_ERROR:
.PHONY: all clean FORCE

all: score.json report.html

# The data as it comes (u8 pixels, labels with their class names).
train-raw.tns: $(D)/train-images-idx3-ubyte.gz $(D)/train-labels-idx1-ubyte.gz
	tensor-load --classes "$(CLASSES)" x=$(word 1,$^) y=$(word 2,$^) -o $@

test-raw.tns: $(D)/t10k-images-idx3-ubyte.gz $(D)/t10k-labels-idx1-ubyte.gz
	tensor-load --classes "$(CLASSES)" x=$(word 1,$^) y=$(word 2,$^) -o $@

# Statistics learned on the training data only, and applied to the test data as they are.
train.tns train.stats &: train-raw.tns norm.params
	normalize $(NORM) --save train.stats -o train.tns train-raw.tns

test.tns: test-raw.tns train.stats
	normalize --load train.stats -o $@ test-raw.tns

# The variables each step depends on, in files whose dates tell make what to redo. Reading
# this file only compares them; a file that differs (or is missing) gets a rule that rewrites
# it, and a recipe is what `make -n` prints instead of running and `make -q` counts as work.
PARAMS_model := $(ARCH) | $(AUGMENT) | $(EPOCHS) $(EPOCH_SIZE) $(BATCH) $(LR) $(DECAY) $(SEED) $(THREADS)
PARAMS_gate  := $(GATE)
PARAMS_norm  := $(NORM)
PARAMS = model.params gate.params norm.params
STALE_PARAMS := $(foreach f,$(PARAMS),$(shell printf '%s\n' '$(PARAMS_$(basename $(f)))' | cmp -s - $(f) || echo $(f)))

$(STALE_PARAMS): FORCE
	printf '%s\n' '$(PARAMS_$(basename $@))' > $@

FORCE:

# One pass over an EPOCHS-fold augmented stream; fit writes the model only if all went well.
fashion.model train-log.jsonl &: train.tns model.params
	rm -f train-log.jsonl
	augment $(AUGMENT) --repeat $(EPOCHS) --seed $(SEED) train.tns \
	  | fit --stream --epoch-size $(EPOCH_SIZE) --model '$(ARCH)' --batch $(BATCH) --lr $(LR) \
	      --lr-decay $(DECAY) --seed $(SEED) --threads $(THREADS) --log train-log.jsonl -o fashion.model

predictions.tns: fashion.model test.tns
	predict -m fashion.model -o $@ test.tns

# The report is drawn first (order only), so that a failed gate leaves it to look at, with the
# failing scores renamed score-failed.json: score.json itself is not left to look up to date.
score.json: predictions.tns gate.params | report.html
	rm -f score-failed.json
	score --json --require '$(GATE)' -o $@ predictions.tns || { s=$$?; [ $$s -ne 1 ] || mv -f $@ score-failed.json; exit $$s; }

report.html: predictions.tns train-log.jsonl
	score -q --report $@ --fit-log train-log.jsonl predictions.tns

# Besides the products: the temporary files (.NAME.XXXXXX) that a tool killed by SIGKILL
# leaves beside them, and fit's checkpoint lock.
OUTPUTS = train-raw.tns test-raw.tns train.tns train.stats test.tns fashion.model fashion.model.ckpt predictions.tns score.json report.html
clean:
	rm -f $(OUTPUTS) $(PARAMS) train-log.jsonl score-failed.json \
	  $(foreach f,$(OUTPUTS),.$(f).??????) .fashion.model.ckpt.lock
