password.o: password.c log.h password.h
log.h:
password.h:
