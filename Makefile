# Aliases for the two commands in the README (tasks.py needs only python3).
.PHONY: book test clean
book:
	python3 tasks.py book
test:
	python3 tasks.py test
clean:
	rm -rf _build .pytest_cache
