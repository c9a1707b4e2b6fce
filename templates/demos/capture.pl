# A raw capture on a lab node (perl-base is in every Debian system; tcpdump is not): reads
# every frame the node sends or receives for SECONDS (an AF_PACKET socket, as tcpdump opens),
# keeps the IPv4 packets between the two node addresses, and counts them by kind: ESP (IP
# protocol 50), VXLAN in the clear (UDP port 4789), other; and the frames that carry MARKER
# in the clear. Prints one line: esp=N vxlan=N other=N marker=N.
# Usage: perl capture.pl THIS_NODE_ADDRESS PEER_ADDRESS SECONDS MARKER
use strict;
use warnings;
use Socket qw(SOCK_RAW inet_aton);

my ($self, $peer, $seconds, $marker) = @ARGV;
my ($me, $them) = (inet_aton($self), inet_aton($peer));
my $all = unpack("S", pack("n", 3));    # htons(ETH_P_ALL)
socket(my $raw, 17, SOCK_RAW, $all) or die "no raw socket (AF_PACKET): $!\n";    # 17: AF_PACKET
my %count = (esp => 0, vxlan => 0, other => 0, marker => 0);
my $end = time + $seconds;
my $wanted = '';
vec($wanted, fileno($raw), 1) = 1;
while (time < $end) {
    next unless select(my $ready = $wanted, undef, undef, 0.25);
    defined(recv($raw, my $frame, 65535, 0)) or next;
    next unless length($frame) > 34 && substr($frame, 12, 2) eq "\x08\x00";    # IPv4 in Ethernet
    my ($src, $dst) = (substr($frame, 26, 4), substr($frame, 30, 4));
    next unless ($src eq $me && $dst eq $them) || ($src eq $them && $dst eq $me);
    my $protocol = ord(substr($frame, 23, 1));
    my $header = (ord(substr($frame, 14, 1)) & 15) * 4;
    if ($protocol == 50) {
        $count{esp}++;
    } elsif ($protocol == 17 && unpack("n", substr($frame, 14 + $header + 2, 2)) == 4789) {
        $count{vxlan}++;
    } else {
        $count{other}++;
    }
    $count{marker}++ if index($frame, $marker) >= 0;
}
print join(" ", map { "$_=$count{$_}" } sort keys %count), "\n";
