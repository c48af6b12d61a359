validate.o: validate.c validate.h
validate.h:
