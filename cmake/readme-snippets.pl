#!/usr/bin/perl
# readme-snippets.pl [--update] README FILE...: every code block of README that follows a
# line "<!-- snippet: ID -->" must equal the snippet ID assembled from FILEs, where a snippet is
# the regions between "[readme:ID]" and "[/readme:ID]" marker lines (comments in any language),
# each region with its common indentation removed, regions joined by one empty line. Every ID
# in FILEs must be used by README. Exit status 1 and a diff when they differ; --update rewrites
# README's blocks from the files instead.
use strict;
use warnings;

my $update = @ARGV && $ARGV[0] eq '--update' ? shift @ARGV : 0;
my $command = join ' ', 'perl', $0, '--update', @ARGV;
my ($readme, @files) = @ARGV;
die "usage: readme-snippets.pl [--update] README FILE...\n" unless $readme && @files;

my (%snippet, %origin);
for my $file (@files) {
    open my $fh, '<', $file or die "$file: $!\n";
    my ($id, @region);
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /\[readme:([\w-]+)\]/) {
            die "$file:$.: [readme:$1] inside [readme:$id]\n" if defined $id;
            $id = $1;
            @region = ();
        } elsif ($line =~ /\[\/readme:([\w-]+)\]/) {
            die "$file:$.: [/readme:$1] without [readme:$1]\n" unless defined $id && $id eq $1;
            my ($indent) = sort { $a <=> $b } map { /^( *)\S/ ? length $1 : () } @region;
            $indent //= 0;
            my $text = join "\n", map { length($_) > $indent ? substr($_, $indent) : ($_ =~ s/^\s+$//r) } @region;
            $snippet{$id} = defined $snippet{$id} ? "$snippet{$id}\n\n$text" : $text;
            $origin{$id} = $file;
            undef $id;
        } elsif (defined $id) {
            push @region, $line;
        }
    }
    die "$file: [readme:$id] not closed\n" if defined $id;
}

open my $fh, '<', $readme or die "$readme: $!\n";
my @lines = <$fh>;
close $fh;
chomp @lines;
my (@out, %used, $failed);
for (my $i = 0; $i < @lines; ++$i) {
    push @out, $lines[$i];
    next unless $lines[$i] =~ /^<!-- snippet: ([\w-]+) -->$/;
    my $id = $1;
    die "$readme:" . ($i + 1) . ": no snippet '$id' in the files\n" unless exists $snippet{$id};
    $used{$id} = 1;
    die "$readme:" . ($i + 2) . ": a ``` block must follow the snippet marker\n"
        unless $i + 1 < @lines && $lines[$i + 1] =~ /^```/;
    push @out, $lines[++$i];
    my @block;
    while (++$i < @lines && $lines[$i] ne '```') { push @block, $lines[$i]; }
    die "$readme: block of snippet '$id' not closed\n" if $i >= @lines;
    my $have = join "\n", @block;
    if ($have ne $snippet{$id}) {
        $failed = 1;
        unless ($update) {
            print STDERR "$readme: the '$id' block differs from $origin{$id} (- README, + source):\n";
            my @a = split /\n/, $have, -1;
            my @b = split /\n/, $snippet{$id}, -1;
            for my $k (0 .. ($#a > $#b ? $#a : $#b)) {
                my ($x, $y) = ($a[$k] // '', $b[$k] // '');
                next if $x eq $y;
                print STDERR "  line " . ($k + 1) . ":\n  - $x\n  + $y\n";
            }
        }
    }
    push @out, split(/\n/, $snippet{$id}, -1), '```';
}
for my $id (sort keys %snippet) {
    next if $used{$id};
    print STDERR "$origin{$id}: snippet '$id' is not shown in $readme (add <!-- snippet: $id -->)\n";
    $failed = 1 unless $update;
}
if ($update) {
    open my $w, '>', $readme or die "$readme: $!\n";
    print $w map { "$_\n" } @out;
    exit 0;
}
if ($failed) {
    print STDERR "Fix the sources, or take them as they are into the README with:\n  $command\n";
    exit 1;
}
