# bash completion for docket: commands, each command's flags, shipped
# pipeline names for `docket run` and `ls --pipeline`, and files elsewhere.
# Installed as share/bash-completion/completions/docket.

_docket_pipelines()
{
	# the pipelines beside the installed binary, then $DOCKET_PIPELINES
	local bin dir d f
	bin=$(command -v docket 2>/dev/null) || return
	bin=$(readlink -f "$bin")
	for d in "${DOCKET_PIPELINES:-}" "${bin%/*}/../share/docket/pipelines"; do
		[ -n "$d" ] && [ -d "$d" ] || continue
		for f in "$d"/*.json; do
			f=${f##*/}
			case $f in *.schema.json | \*.json) continue ;; esac
			printf '%s\n' "${f%.json}"
		done
	done
}

_docket()
{
	local cur prev cmd words cword
	_init_completion 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
	local commands="run batch merge ls chunk generate tokenize perplexity inspect bench"
	if [ "$cword" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	cmd=${words[1]}
	local walk="--include --exclude --max-depth --hidden --follow-symlinks --cross-filesystems
		--no-archives --max-file-bytes --max-member-bytes --max-archive-bytes --max-ratio
		--max-entries --max-nesting --max-text-bytes --tool-timeout --pdftotext"
	local flags
	case $cmd in
	run | batch)
		flags="--output --resume --force --overwrite --incremental --shard --format --include
			--exclude --hidden --no-archives --fail-on --fail-on-unsupported --model --threads --seqs --ctx --batch
			--no-prefix-cache --no-deterministic --prefix-dir --one-at-a-time --no-constrain
			--max-tokens --temperature --seed --progress --report --max-failures --sync-every
			--fallback-url --fallback-model --fallback-key-env --fallback-when --fallback-concurrency
			--allow-sensitive --redact --no-fallback --audit --help" ;;
	merge) flags="--output --overwrite --help" ;;
	ls) flags="--json --fast --pipeline --help $walk" ;;
	chunk) flags="--model --max-tokens --overlap --no-text --output --quiet --help $walk" ;;
	generate)
		flags="--model --prompt --file --chat --system --template-system --chat-template
			--n-predict --temp --top-k --top-p --min-p --repeat-penalty --seed --top-probs
			--json --ignore-eos --grammar --json-schema --kv --no-deterministic --ctx
			--threads --help" ;;
	tokenize) flags="--model --file --ids --no-bos --no-special --help" ;;
	perplexity) flags="--model --file --ctx --batch --kv --threads --chunks --help" ;;
	inspect) flags="--json --full --model --help" ;;
	bench)
		flags="--model --threads --reps --json --quick --chunks --parallel --kv --no-bounds
			--no-shared --shared-only --seed --help" ;;
	esac
	case $prev in
	--pipeline)
		COMPREPLY=($(compgen -W "$(_docket_pipelines)" -- "$cur"))
		compopt -o default 2>/dev/null
		return ;;
	--format) COMPREPLY=($(compgen -W "docket openai-batch" -- "$cur")); return ;;
	--progress) COMPREPLY=($(compgen -W "bar jsonl none" -- "$cur")); return ;;
	--kv) COMPREPLY=($(compgen -W "f16 f32" -- "$cur")); return ;;
	--fallback-when)
		COMPREPLY=($(compgen -W "over_context invalid_output local_error always" -- "$cur"))
		return ;;
	--prefix-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--shard | --seqs | --ctx | --batch | --threads | -t | --max-tokens | --temperature | --seed | \
		--max-failures | --sync-every | --fallback-url | --fallback-model | --fallback-key-env | \
		--fail-on | --include | --exclude | --max-depth | -n | --n-predict | --temp | -p | --prompt)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return
	fi
	# the first operand of run is a pipeline: a shipped name or a file
	if [ "$cmd" = run ]; then
		local i n=0
		for ((i = 2; i < cword; i++)); do
			case ${words[i]} in
			-o | --output | -m | --model | -t | --threads | --shard | --format | --include | \
				--exclude | --fail-on | --seqs | --ctx | --batch | --prefix-dir | --max-tokens | \
				--temperature | --seed | --progress | --report | --max-failures | --sync-every | \
				--fallback-*| --audit) ((i++)) ;;
			-*) ;;
			*) ((n++)) ;;
			esac
		done
		if [ "$n" -eq 0 ]; then
			COMPREPLY=($(compgen -W "$(_docket_pipelines)" -- "$cur"))
			compopt -o default 2>/dev/null
			return
		fi
	fi
	compopt -o default 2>/dev/null
	COMPREPLY=()
}
complete -F _docket docket
