# Docs generated from code: docs/answers.md from the answers catalogue (src/pipeline/answers.ts).
# A unit test fails when a committed generated doc differs from what the code renders.
.PHONY: docs

## regenerate docs/answers.md
docs: build
	node dist/src/pipeline/answers-doc.js
