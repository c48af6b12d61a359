/*
 * chat_version.h: the project's version, the one place it is written.
 *
 * The module logs it when a worker starts, chat-backend prints it for
 * --version, the Makefile reads it for `make deb` and `make install`, and
 * debian/changelog must carry the same upstream version (make lint checks).
 * Bump it together with a CHANGELOG.md entry.
 */

#ifndef CHAT_VERSION_H
#define CHAT_VERSION_H

#define CHAT_VERSION  "0.1.0"

#endif /* CHAT_VERSION_H */
