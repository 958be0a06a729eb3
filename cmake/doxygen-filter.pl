#!/usr/bin/perl
# Doxygen INPUT_FILTER for erlcpp's public headers: their documentation is written as ordinary
# // comments, so this turns them into Doxygen comments while Doxygen reads a file:
#   - the comment block that opens the file describes the file (\file),
#   - a // line before a declaration becomes ///, a trailing "code;  // text" becomes ///<,
#   - in comment text (outside `code spans`) the characters Doxygen treats as commands or
#     markup (\ @ < > & #) are escaped, so prose such as name@host stays prose,
#   - the bodies of `namespace detail` blocks (internals, not API) are blanked out,
#   - a variable named `local` is written `local=`: Doxygen 1.9 reads "local" followed by
#     white space as the IDL keyword and loses the declaration.
# The output has the same number of lines as the input, so warnings point at the header.
use strict;
use warnings;

sub escape_text {
    my ($text) = @_;
    my @parts = split /(`[^`]*`)/, $text;
    for my $p (@parts) {
        next if $p =~ /^`/;
        $p =~ s/([\\@<>&#])/\\$1/g;
    }
    return join '', @parts;
}

my $file_name = $ARGV[0] =~ s{.*/}{}r;
my $at_file_start = 1;
my $in_file_block = 0;
my $in_raw_block = 0;  # inside a /* ... */ comment: left alone
my $detail_depth = 0;  # brace depth inside a namespace detail block, 0 outside

sub brace_delta {
    my ($code) = @_;
    $code =~ s{//.*$}{};
    $code =~ s{"(?:\\.|[^"\\])*"}{""}g;
    $code =~ s{'(?:\\.|[^'\\])*'}{''}g;
    my $open = () = $code =~ /\{/g;
    my $close = () = $code =~ /\}/g;
    return $open - $close;
}

while (my $line = <>) {
    chomp $line;
    if ($detail_depth > 0) {
        $detail_depth += brace_delta($line);
        print "\n";
        next;
    }
    if ($line =~ m{^\s*namespace\s+(?:[\w:]+::)?detail\s*\{}) {
        $detail_depth = brace_delta($line);
        print "\n";
        next;
    }
    $line =~ s{\blocal\s+=}{local=}g if $line !~ m{^\s*//};
    if ($in_raw_block) {
        $in_raw_block = 0 if $line =~ m{\*/};
        print "$line\n";
        next;
    }
    if ($line =~ m{^\s*/\*} && $line !~ m{\*/}) {
        $in_raw_block = 1;
        print "$line\n";
        next;
    }
    if ($line =~ m{^(\s*)//(?![/!])\s?(.*)$}) {
        my ($indent, $text) = ($1, $2);
        if ($at_file_start) {
            my $prefix = $in_file_block ? '///' : "/// \\file $file_name";
            print "$indent$prefix " . escape_text($text) . "\n";
            $in_file_block = 1;
        } else {
            print "$indent/// " . escape_text($text) . "\n";
        }
        next;
    }
    if ($at_file_start && $in_file_block) {
        # A blank line or code ends the file description.
        $at_file_start = 0;
    }
    $at_file_start = 0 if $line =~ /\S/;
    # A trailing comment after code: only when no string literal is open before it.
    if ($line =~ m{^(.*?\S.*?)(\s*)//(?![/!<])\s?(.*)$}) {
        my ($code, $space, $text) = ($1, $2, $3);
        my $quotes = () = $code =~ /(?<!\\)"/g;
        # Not after a closing brace ("}  // namespace x") or a preprocessor line.
        if ($quotes % 2 == 0 && $code !~ m{^\s*#} && $code !~ m{^\s*[{}][\s{};]*$}) {
            print "$code$space///< " . escape_text($text) . "\n";
            next;
        }
    }
    print "$line\n";
}
