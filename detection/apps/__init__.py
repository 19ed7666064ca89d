"""Applications on top of the library: command-line tools' logic (argument parsing, printing,
writing files) and the error policy they share (`cli`). `tools/*.py` are thin entry points into
this package, so an installed wheel has every tool too."""
