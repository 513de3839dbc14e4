# Building a plugin out of tree against an INSTALLED modmta, found with
# pkg-config (modmta.pc; modmta-test.pc for the unit test), as a third
# party builds one. A plugin's Makefile sets NAME, SRC and HDR and
# includes this file:
#
#   make             NAME.so
#   make check       its unit test, with libmodmta-test and cmocka
#   make install     into modmta's module directory (DESTDIR honoured)
#
# In the modmta tree the plugins build with meson instead (meson.build).
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
STRICT = -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L
MODULEDIR = $(shell $(PKG_CONFIG) --variable=moduledir modmta)

$(NAME).so: $(SRC) $(HDR)
	$(CC) $(STRICT) $$($(PKG_CONFIG) --cflags modmta) $(CPPFLAGS) \
	    $(CFLAGS) -fPIC -fvisibility=hidden -shared -o $@ $(SRC) \
	    $(LDFLAGS) $$($(PKG_CONFIG) --libs modmta)

test_$(NAME): tests/test_$(NAME).c $(SRC) $(HDR)
	$(CC) $(STRICT) -I. $$($(PKG_CONFIG) --cflags modmta-test) \
	    $(CPPFLAGS) $(CFLAGS) -o $@ tests/test_$(NAME).c $(SRC) \
	    $(LDFLAGS) $$($(PKG_CONFIG) --libs modmta-test)

check: test_$(NAME)
	./test_$(NAME)

install: $(NAME).so
	install -d $(DESTDIR)$(MODULEDIR)
	install -m 0644 $(NAME).so $(DESTDIR)$(MODULEDIR)/$(NAME).so

clean:
	rm -f $(NAME).so test_$(NAME)

.PHONY: check install clean
