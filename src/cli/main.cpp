// The fedsilo command: train, partition, inspect, eval.
int main() { return 0; }
