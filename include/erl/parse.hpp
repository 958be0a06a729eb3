// erl::parse — reads a term written in Erlang term syntax (what erl::to_string prints, and what
// you would type into the erl shell for a literal term).
//
// Accepted: integers (123, -7, 1_000, 16#FF, 2#1010, $a, $\n, bignums), floats (1.0, -2.5e-8),
// atoms (ok, 'quoted atom', with escapes), strings "..." (charlists; adjacent strings are
// concatenated), binaries <<1,2,"text",3:4,"é"/utf8>> (segments: integer, $c or string values,
// optional :Size in bits, optional /utf8 /integer /signed /unsigned /big), tuples {a,b},
// lists [a,b], [H|T], maps #{K => V}, export funs `fun m:f/1`, and the forms erl::to_string
// prints for identifiers (see "Printing" in <erl/term.hpp>):
//   pid:       <'node@host'.Id.Serial.Creation>
//   port:      #Port<'node@host'.Id.Creation>
//   reference: #Ref<'node@host'.W(n-1).....W0.Creation>
//   closure:   #Fun<Module.OldIndex.OldUniq.Arity.Index.UNIQHEX.Pid.[FreeVars]>
// Whitespace and % comments are ignored; one trailing '.' is allowed.
//
// Never throws (except std::bad_alloc) and never recurses per nesting level: nesting deeper
// than parse_options::max_depth fails with errc::too_deep.
#pragma once

#include <erl/term.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace erl {

struct parse_error {
    std::size_t offset = 0;  // byte offset in the input where the problem was found
    std::string message;     // human readable, e.g. "expected ',' or '}'"
};

struct parse_options {
    // Nesting of tuples/lists/maps/funs; parsing is iterative, so the default is no limit.
    std::size_t max_depth = SIZE_MAX;
    std::size_t max_integer_digits = 100000;             // bigger literals fail (bignum_too_large)
    std::size_t max_binary_bits = std::size_t{1} << 30;  // total size of one binary literal
};

// Errors: errc::invalid_term (syntax), errc::too_deep, errc::bignum_too_large,
// errc::too_large, errc::atom_too_long, errc::invalid_utf8, errc::atom_table_full.
result<term> parse(std::string_view text);
result<term> parse(std::string_view text, parse_error& err);
result<term> parse(std::string_view text, parse_error& err, const parse_options& opts);

}  // namespace erl
