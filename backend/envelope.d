envelope.o: envelope.c ../ngx_chat_module/chat_protocol.h envelope.h \
 validate.h
../ngx_chat_module/chat_protocol.h:
envelope.h:
validate.h:
