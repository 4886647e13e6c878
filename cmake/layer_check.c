/* An empty program that links one layer's whole archive and nothing but
 * the libraries that layer declares: an undefined symbol is a layering
 * violation (see the layer checks in CMakeLists.txt). */
int main(void) { return 0; }
